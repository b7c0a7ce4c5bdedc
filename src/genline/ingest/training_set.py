"""The training dataset: the union of accepted batches, and a sample grid to look at."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from genline.data import DataError, Dataset, concat, make_dataset, row_hashes
from genline.fsutil import atomic_write_bytes
from genline.ingest.store import BATCH_FILE, BatchStore, accepted_days
from genline.npzfiles import load_npz


def build_training_dataset(store: BatchStore, as_of: str | None = None) -> Dataset:
    """The union of accepted batches up to `as_of`, without duplicate rows.

    Rows that repeat an (image, label) already present are dropped, so the same batch delivered
    twice (or on two days) adds nothing and leaves the dataset, and its version, unchanged.

    Raises:
        DataError: no accepted batch yet, or batches that disagree on classes or shape.
    """
    days = accepted_days(store, as_of)
    if not days:
        raise DataError(
            f"no accepted batches in {store.accepted}"
            + (f" up to {as_of}" if as_of else "")
            + ": ingest some days first"
        )
    return union_of_days(store, days)


def union_of_days(store: BatchStore, days: list[str]) -> Dataset:
    """The union of the accepted batches of `days` (oldest first), without duplicate rows.

    Raises:
        DataError: a day has no accepted batch, or batches disagree on classes or shape.
    """
    if not days:
        raise DataError("no days given: the union of no batches is empty")
    missing = [d for d in days if not (store.accepted / d / BATCH_FILE).is_file()]
    if missing:
        raise DataError(f"no accepted batch for {missing} in {store.accepted}")
    union = concat(
        [load_npz(store.accepted / d / BATCH_FILE) for d in days],
        source=f"accepted:{days[0]}..{days[-1]}",
    )
    keys = [
        h + int(label).to_bytes(8, "little")
        for h, label in zip(row_hashes(union.images), union.labels, strict=True)
    ]
    _, first = np.unique(np.array(keys, dtype=object), return_index=True)
    keep = np.sort(first)
    return make_dataset(union.images[keep], union.labels[keep], union.classes, union.source)


def sample_grid_png(ds: Dataset, per_class: int = 10, scale: int = 4) -> bytes:
    """A PNG with one row per class of the first `per_class` images (nearest-neighbour zoom)."""
    from PIL import Image

    c, h, w = ds.image_shape
    grid = np.zeros((ds.num_classes * h, per_class * w, c), np.float32)
    for k in range(ds.num_classes):
        idx = np.flatnonzero(ds.labels == k)[:per_class]
        for j, i in enumerate(idx):
            grid[k * h : (k + 1) * h, j * w : (j + 1) * w] = ds.images[i].transpose(1, 2, 0)
    arr = (np.clip(grid, 0, 1) * 255).round().astype(np.uint8)
    img = Image.fromarray(arr[..., 0] if c == 1 else arr, mode="L" if c == 1 else "RGB")
    img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def write_sample_grid(ds: Dataset, path: str | Path) -> Path:
    atomic_write_bytes(path, sample_grid_png(ds))
    return Path(path)
