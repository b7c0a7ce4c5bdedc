"""The summary tables the suite runs on: one row per image, one row per class.

Their cost does not grow with the image size: an image becomes its label, shape, pixel min/max,
non-finite count, mean intensity and a 64-bit content key (for duplicates).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from genline.data import Dataset
    from genline.validation.config import ReferenceStats, ValidationConfig

_HASH_COEF: list[np.ndarray] = []
IMAGE_COLUMNS = (
    "label",
    "shape",
    "pixel_min",
    "pixel_max",
    "nonfinite",
    "bright_background",
    "row_key",
)


def _row_stats(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(non-finite count, min, max, mean) per row, ignoring non-finite values; fast when all
    values are finite (the common case), exact either way."""
    n = len(flat)
    if n == 0 or flat.shape[1] == 0:
        z = np.zeros(n)
        return z.astype(np.int64), z, z, z
    finite = np.isfinite(flat)
    nonfinite = flat.shape[1] - finite.sum(axis=1)
    pmin, pmax, mean = flat.min(axis=1), flat.max(axis=1), flat.mean(axis=1, dtype=np.float64)
    bad = np.flatnonzero(nonfinite)
    if len(bad):
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: NaN is the answer
            sub = np.where(finite[bad], flat[bad], np.nan)
            pmin[bad], pmax[bad], mean[bad] = (
                np.nanmin(sub, axis=1),
                np.nanmax(sub, axis=1),
                np.nanmean(sub, axis=1),
            )
    return nonfinite, pmin, pmax, mean


def mean_intensity(images: np.ndarray) -> np.ndarray:
    return _row_stats(images.reshape(len(images), -1))[3]


def _bright_background(images: np.ndarray) -> np.ndarray:
    """1.0 where an image's four corner pixels average above 0.5, else 0.0 (per image).

    genline's images are bright ink on a dark background, and a glyph does not reach all four
    corners: bright corners mean an inverted image (a sender's polarity error), however the
    strokes are drawn. Non-finite corners count as dark (no_nan_or_inf reports them).
    """
    if images.ndim != 4 or not len(images) or min(images.shape[2:]) == 0:
        return np.zeros(len(images))
    corners = images[:, :, [0, 0, -1, -1], [0, -1, 0, -1]].reshape(len(images), -1)  # (N, C*4)
    with np.errstate(invalid="ignore"):
        mean = np.where(np.isfinite(corners), corners, 0.0).mean(axis=1)
    return (mean > 0.5).astype(np.float64)


def _row_keys(flat: np.ndarray) -> np.ndarray:
    """A 64-bit content key per row (multiply-xorshift over the float32 bit patterns)."""
    if not _HASH_COEF or _HASH_COEF[0].shape[0] != flat.shape[1]:
        rng = np.random.default_rng(20261128)
        _HASH_COEF[:] = [rng.integers(1, 2**63, size=flat.shape[1], dtype=np.uint64) | 1]
    bits = np.ascontiguousarray(flat, dtype="<f4").view("<u4").astype(np.uint64)
    with np.errstate(over="ignore"):
        h = (bits * _HASH_COEF[0]).sum(axis=1, dtype=np.uint64)
        h ^= h >> np.uint64(31)
        h *= np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(29)
    return h


def summary_frame(ds: Dataset, classes: Sequence[str]) -> pd.DataFrame:
    """The image table: one row per image with what the suite checks.

    `label` holds class names (categorical); a label outside 0..len(ds.classes)-1 becomes
    "#<label>" so the label check can name it. `classes` (the expected names) only sets the
    category order.
    """
    import pandas as pd

    images = np.asarray(ds.images)
    n = len(images)
    flat = (
        images.reshape(n, -1).astype(np.float32, copy=False) if n else np.zeros((0, 1), np.float32)
    )
    nonfinite, pmin, pmax, mean = _row_stats(flat)
    labels = np.asarray(ds.labels).astype(np.int64, copy=False)
    names = list(ds.classes)
    in_range = (labels >= 0) & (labels < len(names))
    strays = sorted(set(labels[~in_range].tolist()))
    categories = names + [f"#{x}" for x in strays]
    codes = labels.copy()
    for j, x in enumerate(strays):
        codes[labels == x] = len(names) + j
    shape = "x".join(str(s) for s in images.shape[1:])
    return pd.DataFrame(
        {
            "row": np.arange(n),
            "label": pd.Categorical.from_codes(codes, categories=categories),
            "shape": pd.Categorical.from_codes(np.zeros(n, np.int8), categories=[shape]),
            "pixel_min": pmin,
            "pixel_max": pmax,
            "nonfinite": nonfinite.astype(np.int32),
            "mean_intensity": mean,
            "bright_background": _bright_background(images),
            "row_key": _row_keys(flat) if n else np.zeros(0, np.uint64),
        }
    )


def class_frame(
    frame: pd.DataFrame,
    classes: Sequence[str],
    reference: ReferenceStats | None,
    cfg: ValidationConfig,
) -> pd.DataFrame:
    """The class table: one row per expected class with its count, share and mean intensity,
    and the intensity bounds the reference sets (NaN where there is no reference)."""
    import pandas as pd

    # Per-category counts and intensity sums from the categorical codes (one pass each).
    cats = list(frame["label"].cat.categories)
    codes = frame["label"].cat.codes.to_numpy()
    intensity = frame["mean_intensity"].to_numpy()
    finite = np.isfinite(intensity)
    n_all = np.bincount(codes, minlength=len(cats))
    n_finite = np.bincount(codes[finite], minlength=len(cats))
    sums = np.bincount(codes[finite], weights=intensity[finite], minlength=len(cats))
    counts = {c: int(n_all[i]) for i, c in enumerate(cats)}
    means = {c: sums[i] / n_finite[i] if n_finite[i] else np.nan for i, c in enumerate(cats)}
    total = max(sum(counts.get(c, 0) for c in classes), 1)
    rows = []
    for name in classes:
        n_c = int(counts.get(name, 0))
        lo = hi = np.nan
        if reference is not None and name in reference.class_mean and n_c:
            tol = max(
                cfg.intensity_abs_tol, cfg.intensity_z * reference.class_std[name] / math.sqrt(n_c)
            )
            lo, hi = reference.class_mean[name] - tol, reference.class_mean[name] + tol
        m = float(means.get(name, np.nan)) if n_c else np.nan
        rows.append(
            {
                "label": name,
                "n": n_c,
                "share": n_c / total,
                "mean_intensity": m,
                "intensity_low": lo,
                "intensity_high": hi,
            }
        )
    return pd.DataFrame(
        rows, columns=["label", "n", "share", "mean_intensity", "intensity_low", "intensity_high"]
    )
