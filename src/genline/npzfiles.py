""".npz files: the one parser (`read_npz`), the checked and resized loader (`load_npz`) and the
atomic writer (`save_npz`, canonical row order). Folders of image files are genline.imagefiles.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from genline.data import (
    DataConfig,
    DataError,
    Dataset,
    canonical_order,
    check_arrays,
    make_dataset,
    resize_images,
    resize_note,
)


def read_npz(path: str | Path) -> Dataset:
    """Parse an .npz into canonical arrays without judging their content (the one .npz parser).

    `images` (N,H,W) or (N,C,H,W), integer `labels` (N,), optional `classes`. Integer images must
    be in 0-255 and are scaled to [0, 1]; float images are kept as float32 (NaN, range and label
    checks are left to the caller: `load_npz` refuses, the validation suite reports).

    Args:
        path: the .npz file.

    Returns:
        A Dataset at its stored size whose arrays may still be invalid.

    Raises:
        DataError: the file is missing, zero-byte or not an .npz, an array is missing, the shapes
            or dtypes are wrong, or integer pixels lie outside 0-255.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise DataError(f"{p}: zero-byte file")
    try:
        with np.load(p, allow_pickle=False) as npz:
            keys = set(npz.files)
            if "images" not in keys:
                raise DataError(f"{p}: missing array 'images' (found {sorted(keys)})")
            if "labels" not in keys:
                raise DataError(f"{p}: missing array 'labels' (found {sorted(keys)})")
            images, labels = npz["images"], npz["labels"]
            classes = [str(c) for c in npz["classes"]] if "classes" in keys else None
    except DataError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError on pickled arrays, OSError
        raise DataError(f"{p}: cannot be read as .npz ({exc})") from exc
    where = f"npz:{p}"
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise DataError(f"{where}: images must be (N,H,W) or (N,C,H,W), got {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(f"{where}: labels must have shape ({images.shape[0]},), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{where}: labels must be integers, got dtype {labels.dtype}")
    if np.issubdtype(images.dtype, np.integer):
        if images.size and (images.min() < 0 or images.max() > 255):
            raise DataError(f"{where}: integer images must be in 0-255, "
                            f"got {images.min()}-{images.max()}")
        images = images.astype(np.float32) / 255.0
    elif np.issubdtype(images.dtype, np.floating):
        images = images.astype(np.float32)
    else:
        raise DataError(f"{where}: images have unsupported dtype {images.dtype}")
    if classes is None:
        n_cls = int(labels.max()) + 1 if labels.size else 0
        classes = [str(k) for k in range(n_cls)]
    return Dataset(images, labels.astype(np.int64), tuple(classes), where)


def load_npz(path: str | Path, cfg: DataConfig | None = None) -> Dataset:
    """An .npz read by `read_npz`, then checked (NaN, range, labels, class sizes) and resized.

    Integer images are read as 0-255; float images must already be in [0, 1]. With `cfg=None`
    the images keep their stored size and channels (as written by `save_npz`).

    Raises:
        DataError: anything `read_npz` or `check_arrays` refuses.
    """
    raw = read_npz(path)
    images, labels, classes, where = raw.images, raw.labels, raw.classes, raw.source
    check_arrays(images, labels, classes, where)  # NaN/range before resizing hides them
    note = None
    if cfg is not None:
        sizes = [images.shape[2:]] * len(images)
        if not cfg.is_resolved:
            cfg, note = cfg.native(sizes, [images.shape[1]])
        if note is None:
            note = resize_note(sizes, cfg)
        images = resize_images(images, cfg)
    ds = make_dataset(images, labels, classes, where)
    return replace(ds, notes=(note,)) if note else ds


def save_npz(ds: Dataset, path: str | Path) -> Path:
    """Write the dataset in canonical row order, atomically (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    order = canonical_order(ds.images, ds.labels)
    buf = io.BytesIO()
    np.savez(buf, images=ds.images[order].astype(np.float32), labels=ds.labels[order],
             classes=np.array(ds.classes, dtype=str))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
