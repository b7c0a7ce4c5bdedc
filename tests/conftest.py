"""Shared fixtures: an isolated genline state dir, and one `ci`-preset model per test session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session", autouse=True)
def genline_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session gets its own GENLINE_HOME (evaluator cache, alerts, registries)."""
    home = tmp_path_factory.mktemp("genline_home")
    old = os.environ.get("GENLINE_HOME")
    os.environ["GENLINE_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("GENLINE_HOME", None)
    else:
        os.environ["GENLINE_HOME"] = old


@pytest.fixture(scope="session")
def digits():
    from genline.data import load_builtin

    return load_builtin()


@pytest.fixture(scope="session")
def ci_model(tmp_path_factory: pytest.TempPathFactory, digits):
    """The `ci` preset trained once on the built-in digits: (RunResult, model dir)."""
    from genline.export import ExportConfig
    from genline.workflow import run_training

    out = tmp_path_factory.mktemp("ci_model")
    result = run_training(digits, "ci", out, export_cfg=ExportConfig(try_int8=False),
                          progress=False)
    return result, out


@pytest.fixture(scope="session")
def ci_model_dir(ci_model) -> Path:
    return ci_model[1]


def write_image_folder(root: Path, ds, per_class: int = 12, size: int = 16,
                       rgb: bool = False) -> Path:
    """Write part of a dataset as PNGs, one subfolder per class (user-style data)."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(ds.classes):
        d = root / f"class_{name}"
        d.mkdir(exist_ok=True)
        for i, idx in enumerate(np.flatnonzero(ds.labels == k)[:per_class]):
            arr = (ds.images[idx, 0] * 255).astype(np.uint8)
            img = Image.fromarray(arr, "L").resize((size, size), Image.Resampling.BILINEAR)
            if rgb:
                img = img.convert("RGB")
            img.save(d / f"{i:04d}.png" if i % 2 else d / f"{i:04d}.jpg")
    return root
