"""Shared fixtures: an isolated genline state dir, and one `ci`-preset model per test session."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from genline import contract


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


TRAINING_SOURCES = ("data.py", "imagefiles.py", "model.py", "train.py", "evaluate.py", "gate.py",
                    "export.py", "lineage.py", "workflow.py", "contract.py", "embedding.py",
                    "variants.py", "distill.py")


def _source_key() -> str:
    root = Path(__file__).resolve().parent.parent / "src" / "genline"
    h = hashlib.sha256()
    for name in TRAINING_SOURCES:
        h.update(name.encode())
        h.update((root / name).read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def ci_model_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 digits) -> Path:
    """The `ci` preset trained once on the built-in digits, shared by every area's tests.

    Cached in the pytest cache under a hash of the training sources, so a change to the model
    code retrains and an unchanged tree reuses it (a fresh CI clone trains once). Treat it as
    read-only: copy it before changing files in it.
    """
    import fcntl

    from genline.workflow import run_training

    root = Path(request.config.cache.mkdir("genline_ci_model"))
    cache = root / _source_key()
    # parallel test workers (pytest-xdist) share the cache: one trains, the others wait for it
    with open(root / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (cache / contract.GATE).is_file() and (cache / contract.EXPORT_REPORT).is_file():
            return cache
        tmp = tmp_path_factory.mktemp("ci_model")
        run_training(digits, "ci", tmp / "model", progress=False)
        shutil.rmtree(cache, ignore_errors=True)
        os.replace(tmp / "model", cache)
    return cache


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
