"""Small kfp-free helpers the component bodies share (importable from the project image)."""

from __future__ import annotations

import base64
import html
from pathlib import Path


def png_html(png: str | Path, title: str) -> str:
    """A self-contained HTML page showing a PNG (KFP renders HTML artifacts in its UI)."""
    data = base64.b64encode(Path(png).read_bytes()).decode()
    t = html.escape(title)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{t}</title></head>"
        f"<body><h3>{t}</h3><img alt='{t}' style='image-rendering:pixelated;width:480px' "
        f"src='data:image/png;base64,{data}'></body></html>"
    )
