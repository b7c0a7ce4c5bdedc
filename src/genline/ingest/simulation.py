"""The built-in simulation: the UCI digits dealt into daily batches, delivered like any sender.

The simulated history is the `days` days that end yesterday by `genline.clock` (or a window from
a given start). A date's batch is `date.toordinal() % days`: fixed for the date whatever the
clock says, and any `days` consecutive dates hold every batch once.

A delivery can come in another handwriting style (`STYLES`: "thick" strokes, a "slant"): the same
digits and labels, still valid images in [0, 1], drawn differently, so new deliveries differ in
style from the history (what the input-batch drift check and the staleness monitor must notice).
"""

from __future__ import annotations

import functools
from datetime import date as Date
from datetime import timedelta
from pathlib import Path

import numpy as np

from genline import clock
from genline.data import DataConfig, DataError, Dataset, load_builtin, row_hashes
from genline.ingest.store import BATCH_FILE, BatchStore, parse_day
from genline.npzfiles import save_npz

DEFAULT_SIM_DAYS = 28
STYLES = ("thick", "slant")


def apply_style(images: np.ndarray, style: str | None) -> np.ndarray:
    """The images drawn in another handwriting style; valid digits, same shapes, in [0, 1].

    Args:
        images: (N, C, H, W) float32 in [0, 1].
        style: None or "plain" (unchanged), "thick" (a 2x2 grey dilation: every stroke one
            pixel wider and taller, as with a broader pen), "slant" (a shear of 0.35 pixels per
            row about the centre, letters leaning right; bilinear, clipped to [0, 1]).

    Raises:
        DataError: an unknown style, or images that are not (N, C, H, W).
    """
    if style in (None, "", "plain"):
        return images
    if style not in STYLES:
        raise DataError(f"unknown style {style!r} (known: plain, {', '.join(STYLES)})")
    if images.ndim != 4:
        raise DataError(f"images must be (N, C, H, W) to restyle, got shape {images.shape}")
    from scipy import ndimage

    n, c, h, w = images.shape
    flat = images.reshape(n * c, h, w)  # (N*C, H, W): each channel restyled alike
    if style == "thick":
        out = ndimage.grey_dilation(flat, size=(1, 2, 2))
    else:
        shear = 0.35
        # output (y, x) samples input (y, x + shear * (y - centre)): rows above the centre move
        # right, rows below move left, a right lean
        matrix = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, shear, 1.0]])
        centre = np.array([0.0, (h - 1) / 2, (w - 1) / 2])
        offset = centre - matrix @ centre
        out = ndimage.affine_transform(flat, matrix, offset=offset, order=1, mode="constant")
    return np.clip(out, 0.0, 1.0).astype(np.float32).reshape(n, c, h, w)


def styled(ds: Dataset, style: str | None) -> Dataset:
    """`ds` with its images in `style` (labels and classes unchanged; its source names it)."""
    if style in (None, "", "plain"):
        return ds
    return Dataset(apply_style(ds.images, style), ds.labels, ds.classes, f"{ds.source}@{style}")


def simulated_batches(
    days: int = DEFAULT_SIM_DAYS, cfg: DataConfig = DataConfig()
) -> list[Dataset]:
    """The built-in digits split into `days` daily batches, deterministically.

    Within each class, images are ranked by content hash and dealt round-robin over the days, so
    every day gets every class in proportion and the split never depends on file order.
    """
    if days < 1:
        raise DataError(f"days must be >= 1, got {days}")
    return list(_simulated_batches(days, cfg))


@functools.lru_cache(maxsize=4)
def _simulated_batches(days: int, cfg: DataConfig) -> tuple[Dataset, ...]:
    ds = load_builtin(cfg)
    hashes = row_hashes(ds.images)
    day_of = np.empty(len(ds), np.int64)
    for k in range(ds.num_classes):
        idx = np.flatnonzero(ds.labels == k)
        ranked = sorted(idx, key=lambda i: hashes[i])
        for r, i in enumerate(ranked):
            day_of[i] = r % days
    return tuple(
        ds.subset(np.flatnonzero(day_of == d), f"builtin:uci-digits#day{d}") for d in range(days)
    )


def simulation_window(
    days: int = DEFAULT_SIM_DAYS, start_date: str | Date | None = None
) -> tuple[Date, Date]:
    """The first and last simulated day (inclusive).

    Args:
        days: length of the simulated history.
        start_date: its first day; None: the `days` days that end yesterday by `genline.clock`.

    Raises:
        DataError: `days` < 1 or a malformed start date.
    """
    if days < 1:
        raise DataError(f"days must be >= 1, got {days}")
    first = parse_day(start_date) if start_date else clock.today() - timedelta(days=days)
    return first, first + timedelta(days=days - 1)


def simulated_day_index(
    day: str | Date, start_date: str | Date | None = None, days: int = DEFAULT_SIM_DAYS
) -> int | None:
    """The simulation's batch index for a date, or None outside the simulated window.

    The index depends on the date alone (`toordinal() % days`), not on where the window starts:
    a window that moves with the clock keeps every date's content.
    """
    d = parse_day(day)
    first, last = simulation_window(days, start_date)
    return d.toordinal() % days if first <= d <= last else None


def deliver_simulated(
    store: BatchStore,
    day: str,
    start_date: str | Date | None = None,
    days: int = DEFAULT_SIM_DAYS,
    cfg: DataConfig = DataConfig(),
    style: str | None = None,
) -> Path | None:
    """Drop the simulated batch for `day` into the drop folder, unless a delivery is there.

    Args:
        store: the drop folder's store.
        day: the date to deliver (YYYY-MM-DD).
        start_date: the window's first day; None: the window ends yesterday by `genline.clock`.
        days: length of the window (and number of distinct batches).
        cfg: how the built-in digits are loaded.
        style: the handwriting style (`apply_style`); None: as in the built-in digits.

    Returns:
        The delivery folder, or None when the date is outside the simulated window.
    """
    index = simulated_day_index(day, start_date, days)
    if index is None:
        return None
    folder = store.delivery_dir(day)
    if folder.exists() and any(folder.iterdir()):
        return folder
    if style not in (None, "", "plain") and style not in STYLES:  # before anything is written
        raise DataError(f"unknown style {style!r} (known: plain, {', '.join(STYLES)})")
    batch = styled(simulated_batches(days, cfg)[index], style)
    save_npz(batch, folder / BATCH_FILE)
    return folder


def simulate_history(
    store: BatchStore,
    start_date: str | Date | None = None,
    days: int = DEFAULT_SIM_DAYS,
    cfg: DataConfig = DataConfig(),
    style: str | None = None,
    last: int | None = None,
) -> list[Path]:
    """Deliver every simulated day into the drop folder (existing deliveries are left alone).

    Args:
        store: the drop folder's store.
        start_date: the first day; None: the `days` days ending yesterday by `genline.clock`.
        days: how many days.
        cfg: how the built-in digits are loaded.
        style: the handwriting style of these deliveries (`apply_style`); None: plain.
        last: only the last `last` days of the window (the newest deliveries); None: all.

    Returns:
        The delivery folders, oldest first.

    Raises:
        DataError: `last` outside 1..days, an unknown style, or a malformed start date.
    """
    if last is not None and not 1 <= last <= days:
        raise DataError(f"last must be in 1..{days} (the window's days), got {last}")
    first, _ = simulation_window(days, start_date)  # fixed once, so a midnight cannot split it
    out = []
    for d in range(days - (last or days), days):
        day = (first + timedelta(days=d)).isoformat()
        folder = deliver_simulated(store, day, first, days, cfg, style)
        if folder is not None:
            out.append(folder)
    return out
