"""Reading a delivery (one .npz, or one subfolder per class of images) without judging it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from genline.data import DataConfig, DataError, Dataset
from genline.imagefiles import read_image
from genline.npzfiles import read_npz


def delivery_sha256(folder: str | Path) -> str:
    """sha256 over the delivery's relative file names and bytes (identifies a delivery)."""
    folder = Path(folder)
    h = hashlib.sha256()
    for p in sorted(x for x in folder.rglob("*") if x.is_file()):
        h.update(str(p.relative_to(folder)).encode() + b"\0")
        with open(p, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def read_delivery(
    folder: str | Path, cfg: DataConfig = DataConfig(), classes: tuple[str, ...] | None = None
) -> Dataset:
    """Read a delivery (a folder, or an .npz file) without judging its content.

    The validation suite judges the content; this only refuses what cannot be read at all.

    A delivery is one `.npz` (`images` (N,H,W) or (N,C,H,W), integer `labels`, optional
    `classes`; kept at its stored shape) or one subfolder per class of PNG/JPEG images (resized
    to `cfg`). Class names of an image folder are mapped onto `classes` when given, so a folder
    holding a subset of the classes still gets the right label numbers.

    Raises:
        DataError: the folder is missing or empty, a file is zero-byte, corrupt or not an image,
            or the arrays cannot be read (this is the `readable` check).
    """
    folder = Path(folder)
    if folder.is_file() and folder.suffix == ".npz":
        return read_npz(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no delivery (folder missing)")
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    if not entries:
        raise DataError(f"{folder}: the delivery is empty")
    npzs = [p for p in entries if p.is_file() and p.suffix == ".npz"]
    if npzs:
        if len(entries) != 1:
            raise DataError(
                f"{folder}: expected one .npz or class subfolders, found "
                f"{[p.name for p in entries][:5]}"
            )
        return read_npz(npzs[0])
    return _read_folder_raw(folder, entries, cfg, classes)


def _read_folder_raw(
    folder: Path, entries: list[Path], cfg: DataConfig, classes: tuple[str, ...] | None
) -> Dataset:
    stray = [p.name for p in entries if not p.is_dir()]
    if stray:
        raise DataError(f"{folder}: expected one .npz or class subfolders, found files {stray[:3]}")
    names = list(classes) if classes else [p.name for p in entries]
    images, labels = [], []
    for cdir in entries:
        if cdir.name not in names:
            names.append(cdir.name)  # an unknown class: labels_in_set will name it
        for f in sorted(p for p in cdir.iterdir() if p.is_file() and not p.name.startswith(".")):
            images.append(read_image(f, cfg))  # the loader's own reading, so both paths agree
            labels.append(names.index(cdir.name))
    if not images:
        raise DataError(f"{folder}: the class folders hold no images")
    return Dataset(np.stack(images), np.array(labels, np.int64), tuple(names), f"folder:{folder}")
