"""Folders of image files: one subfolder per class of PNG/JPEG images, of any size and mode.

Decoding, the resize note a user sees, and the folder loader. The result is a `genline.data`
Dataset in canonical form; ingest reads a delivered folder with the same `read_image`, so both
paths agree on every pixel.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from genline.data import DataConfig, DataError, Dataset, make_dataset, resize_images, resize_note

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_image(path: Path, cfg: DataConfig) -> np.ndarray:
    """One PNG/JPEG file -> (C, S, S) float32 in [0, 1] in the configured size and channels.

    Raises:
        DataError: a wrong suffix, a zero-byte, truncated or non-image file (naming the file).
    """
    return resize_images(_decode_image(path, cfg)[None], cfg)[0]


def _decode_image(path: Path, cfg: DataConfig) -> np.ndarray:
    """One PNG/JPEG file -> (C, h, w) float32 in [0, 1] at its stored size."""
    from PIL import Image, UnidentifiedImageError

    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataError(f"{path}: not an image file (accepted: {', '.join(IMAGE_SUFFIXES)})")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: zero-byte file")
    try:
        with Image.open(path) as im:
            im.load()
            if cfg.channels is not None:
                mode = "L" if cfg.channels == 1 else "RGB"
            else:  # native: gray stays gray
                gray = im.mode in ("1", "L", "LA", "I", "I;16", "F") or (
                    im.mode == "P" and _palette_is_gray(im))
                mode = "L" if gray else "RGB"
            arr = np.asarray(im.convert(mode), np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot be read as an image ({exc})") from exc
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # (C, h, w)


def _palette_is_gray(im) -> bool:
    pal = np.asarray(im.convert("RGB"), np.int16)
    return bool((pal[..., 0] == pal[..., 1]).all() and (pal[..., 1] == pal[..., 2]).all())


def load_image_folder(path: str | Path, cfg: DataConfig = DataConfig()) -> Dataset:
    """A folder with one subfolder per class of PNG/JPEG images (any size, gray or RGB).

    Raises:
        DataError: empty folder, a class without images, a zero-byte, truncated or non-image file.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        stray = [p.name for p in root.iterdir() if not p.name.startswith(".")]
        found = f"; found files {stray[:3]}" if stray else ", the folder is empty"
        raise DataError(f"{root}: no class subfolders found (expected one subfolder per class"
                        f"{found})")
    decoded, labels, sizes = [], [], []
    for k, cdir in enumerate(class_dirs):
        files = sorted(p for p in cdir.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DataError(f"{cdir}: class folder has no images")
        for f in files:
            arr = _decode_image(f, cfg)
            sizes.append(arr.shape[1:])
            decoded.append(arr)
            labels.append(k)
    note = None
    if not cfg.is_resolved:  # the images' own size and channels
        cfg, note = cfg.native(sizes, [a.shape[0] for a in decoded])
    images = [resize_images(a[None], cfg)[0] for a in decoded]
    ds = make_dataset(np.stack(images), np.array(labels), [d.name for d in class_dirs],
                      f"folder:{root}")
    note = note or resize_note(sizes, cfg)
    return replace(ds, notes=(note,)) if note else ds
