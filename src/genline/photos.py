"""Real photographs that ship inside installed packages, cut into tiles: genline's built-in image
set above 8x8 (nothing is downloaded).

Three photos, one class each: `china` (a temple among trees under a blue sky) and `flower`
(a close-up of a flower), both 640x427 from scikit-learn's sample images, and `hopper` (a
portrait of Grace Hopper, 512x600, from matplotlib's sample data). A tile is a square crop at
the photo's own scale; tiles are cut on a grid with the given stride (the tile size by default:
no two tiles share a pixel, so a test tile never overlaps a training tile). At 32x32 that is
260 + 260 + 288 = 808 RGB images.

`write_photo_folder` writes them as an image folder (one subfolder per class, PNG), the form
users bring their own data in; `genline data photos` is its command.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from genline.data import DataError, Dataset, make_dataset

# class name -> (package, path inside the package)
PHOTOS: dict[str, tuple[str, str]] = {
    "china": ("sklearn", "datasets/images/china.jpg"),
    "flower": ("sklearn", "datasets/images/flower.jpg"),
    "hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
}


def photo_path(name: str) -> Path:
    """Where an installed package keeps the photo of class `name` (the package is not imported).

    Raises:
        DataError: an unknown class, or the package or file is missing.
    """
    if name not in PHOTOS:
        raise DataError(f"unknown photo {name!r}; known: {sorted(PHOTOS)}")
    package, rel = PHOTOS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the {name} photo ships with {package}, which is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / rel
    if not path.is_file():
        raise DataError(f"the {name} photo is missing from {package}: {path}")
    return path


def tiles(image: np.ndarray, size: int, stride: int) -> np.ndarray:
    """(H, W, C) uint8 -> (N, C, size, size) float32 in [0, 1], row-major grid from the top-left."""
    h, w = image.shape[:2]
    out = [image[y : y + size, x : x + size]
           for y in range(0, h - size + 1, stride) for x in range(0, w - size + 1, stride)]
    if not out:
        raise DataError(f"a {w}x{h} photo has no {size}x{size} tile")
    return np.stack(out).transpose(0, 3, 1, 2).astype(np.float32) / 255.0


def photo_tiles(size: int = 32, stride: int | None = None,
                classes: tuple[str, ...] = tuple(PHOTOS)) -> Dataset:
    """The photos cut into `size` x `size` RGB tiles, one class per photo.

    Args:
        size: tile side in pixels (8-256).
        stride: grid step; default `size` (tiles do not overlap).
        classes: which photos (at least 2).

    Raises:
        DataError: a size or stride out of range, fewer than 2 classes, or a missing photo.
    """
    from PIL import Image

    stride = size if stride is None else stride
    if not 8 <= size <= 256 or not 1 <= stride:
        raise DataError(f"tile size must be 8-256 and stride >= 1, got size {size}, "
                        f"stride {stride}")
    if len(set(classes)) < 2:
        raise DataError(f"a photo dataset needs at least 2 classes, got {list(classes)}")
    images, labels = [], []
    for k, name in enumerate(classes):
        with Image.open(photo_path(name)) as img:
            arr = np.asarray(img.convert("RGB"))
        t = tiles(arr, size, stride)
        images.append(t)
        labels.append(np.full(len(t), k, np.int64))
    return make_dataset(np.concatenate(images), np.concatenate(labels), list(classes),
                        f"photos:{size}/{stride}")


def write_photo_folder(out: str | Path, size: int = 32, stride: int | None = None) -> Path:
    """Write the tiles as an image folder (out/<class>/<index>.png) and return it.

    Raises:
        DataError: as `photo_tiles`, or `out` exists and is not empty (nothing is overwritten).
    """
    import os
    import shutil
    import tempfile

    from PIL import Image

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out} exists and is not empty: choose a new folder")
    ds = photo_tiles(size, stride)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for k, name in enumerate(ds.classes):
            (tmp / name).mkdir()
            for i, idx in enumerate(np.flatnonzero(ds.labels == k)):
                arr = (ds.images[idx].transpose(1, 2, 0) * 255).round().astype(np.uint8)
                Image.fromarray(arr, "RGB").save(tmp / name / f"{i:04d}.png")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)  # complete or absent
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
