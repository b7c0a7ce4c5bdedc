"""Small kfp-free helpers the component bodies share (importable from the project image)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from genline import contract


def resolve_champion(
    champion_version: str,
    model_repository: str,
    model: str = contract.MODEL_NAME,
    registry_path: str = "",
) -> str | None:
    """The model directory of a published version, for the champion/challenger gate.

    Args:
        champion_version: "" for no champion, "serving" for whatever serves now (none when
            nothing has been published yet), or a version number.
        model_repository: the Triton model repository the version was published into.
        model: the served model's name.
        registry_path: the serving registry file; empty for the default under the state dir.

    Returns:
        The directory the version was published from, or None when there is no champion.

    Raises:
        ValueError: an unknown version, or one whose model directory no longer exists.
    """
    if not champion_version:
        return None
    from genline.serving.registry import Registry

    registry = Registry(registry_path or None)
    entry = registry.entry(model_repository, model)
    if champion_version == "serving":
        serving = entry.get("serving")
        if serving is None:
            return None
        version = str(serving)
    elif champion_version.isdigit():
        version = str(int(champion_version))
    else:
        raise ValueError(
            f"champion_version must be '', 'serving' or a version number, got {champion_version!r}"
        )
    record = entry.get("versions", {}).get(version)
    if record is None:
        known = sorted(entry.get("versions", {}), key=int)
        raise ValueError(
            f"version {version} of {model} was never published to "
            f"{model_repository} (published: {known or 'none'})"
        )
    model_dir = record.get("lineage", {}).get("model_dir")
    if not model_dir or not Path(model_dir).is_dir():
        raise ValueError(
            f"version {version}: its model directory {model_dir!r} is gone, so it "
            "cannot be re-scored as the champion"
        )
    return model_dir


def png_html(png: str | Path, title: str) -> str:
    """A self-contained HTML page showing a PNG (KFP renders HTML artifacts in its UI)."""
    data = base64.b64encode(Path(png).read_bytes()).decode()
    t = html.escape(title)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{t}</title></head>"
        f"<body><h3>{t}</h3><img alt='{t}' style='image-rendering:pixelated;width:480px' "
        f"src='data:image/png;base64,{data}'></body></html>"
    )
