"""Daily batches: the drop folder, the built-in simulation, quarantine and the accepted store.

    <root>/incoming/<YYYY-MM-DD>/    deliveries: an .npz, or one subfolder per class of images
    <root>/accepted/<YYYY-MM-DD>/    batch.npz (canonical) + validation.json of accepted batches
    <root>/quarantine/<YYYY-MM-DD>/<UTC time>/
                                     a rejected delivery, moved as delivered, + validation.json;
                                     kept, never deleted

`<root>` is genline's state directory unless configured. The built-in simulation splits the UCI
digits into `days` daily batches (stratified by class, rows assigned by content hash), so there is
a real history to look at and backfill; it writes each day into the drop folder like any sender.
The simulated history is the `days` days that end yesterday by `genline.clock` (or a window from
a given start). A date's batch is `date.toordinal() % days`: fixed for the date whatever the
clock says, and any `days` consecutive dates hold every batch once, so the demo, the schedule and
`--days N` find data on any date and re-ingesting a day never changes its content.

Only accepted batches ever reach `build_training_dataset`.
"""

from __future__ import annotations

import functools
import hashlib
import io
import shutil
from dataclasses import dataclass
from datetime import date as Date
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from genline import clock
from genline.alerts import send_alert
from genline.data import (
    DataConfig,
    DataError,
    Dataset,
    concat,
    load_builtin,
    load_npz,
    make_dataset,
    row_hashes,
    save_npz,
)
from genline.fsutil import atomic_write_bytes, atomic_write_json, read_json
from genline.paths import state_dir
from genline.validation import ReferenceStats, ValidationConfig, ValidationResult, validate_dataset

BATCH_FILE = "batch.npz"
RESULT_FILE = "validation.json"
DEFAULT_SIM_DAYS = 28


@dataclass(frozen=True)
class BatchStore:
    """Where deliveries, accepted batches and quarantined batches live."""

    root: Path

    @classmethod
    def default(cls, root: str | Path | None = None) -> BatchStore:
        return cls(Path(root) if root else state_dir())

    @property
    def incoming(self) -> Path:
        return self.root / "incoming"

    @property
    def accepted(self) -> Path:
        return self.root / "accepted"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    def delivery_dir(self, day: str) -> Path:
        return self.incoming / parse_day(day).isoformat()


@dataclass(frozen=True)
class IngestOutcome:
    """What happened to one day's delivery."""

    day: str
    status: str  # "accepted" | "quarantined"
    result: ValidationResult
    result_path: Path
    batch_path: Path | None  # accepted: the canonical batch; quarantined: the moved delivery
    delivery_sha256: str
    num_rows: int
    alert_id: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"


def parse_day(day: str | Date) -> Date:
    if isinstance(day, Date):
        return day
    try:
        return Date.fromisoformat(str(day))
    except ValueError as exc:
        raise DataError(f"{day!r} is not a date in YYYY-MM-DD form") from exc


# --- the built-in simulation ----------------------------------------------------------------------


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
) -> Path | None:
    """Drop the simulated batch for `day` into the drop folder, unless a delivery is there.

    Args:
        store: the drop folder's store.
        day: the date to deliver (YYYY-MM-DD).
        start_date: the window's first day; None: the window ends yesterday by `genline.clock`.
        days: length of the window (and number of distinct batches).
        cfg: how the built-in digits are loaded.

    Returns:
        The delivery folder, or None when the date is outside the simulated window.
    """
    index = simulated_day_index(day, start_date, days)
    if index is None:
        return None
    folder = store.delivery_dir(day)
    if folder.exists() and any(folder.iterdir()):
        return folder
    batch = simulated_batches(days, cfg)[index]
    save_npz(batch, folder / BATCH_FILE)
    return folder


def simulate_history(
    store: BatchStore,
    start_date: str | Date | None = None,
    days: int = DEFAULT_SIM_DAYS,
    cfg: DataConfig = DataConfig(),
) -> list[Path]:
    """Deliver every simulated day into the drop folder (existing deliveries are left alone).

    Args:
        store: the drop folder's store.
        start_date: the first day; None: the `days` days ending yesterday by `genline.clock`.
        days: how many days.
        cfg: how the built-in digits are loaded.

    Returns:
        The delivery folders, oldest first.
    """
    first, _ = simulation_window(days, start_date)  # fixed once, so a midnight cannot split it
    out = []
    for d in range(days):
        day = (first + timedelta(days=d)).isoformat()
        folder = deliver_simulated(store, day, first, days, cfg)
        if folder is not None:
            out.append(folder)
    return out


# --- reading a delivery ------------------------------------------------------------------------


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
        return _read_npz_raw(folder)
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
        return _read_npz_raw(npzs[0])
    return _read_folder_raw(folder, entries, cfg, classes)


def _read_npz_raw(path: Path) -> Dataset:
    if path.stat().st_size == 0:
        raise DataError(f"{path}: zero-byte file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "images" not in npz.files or "labels" not in npz.files:
                raise DataError(f"{path}: needs arrays 'images' and 'labels', found {npz.files}")
            images, labels = npz["images"], npz["labels"]
            classes = [str(c) for c in npz["classes"]] if "classes" in npz.files else None
    except DataError:
        raise
    except Exception as exc:  # BadZipFile, pickled arrays, truncated data
        raise DataError(f"{path}: cannot be read as .npz ({exc})") from exc
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise DataError(f"{path}: images must be (N,H,W) or (N,C,H,W), got {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{path}: labels must have shape ({len(images)},), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: labels must be integers, got dtype {labels.dtype}")
    if np.issubdtype(images.dtype, np.integer):
        images = images.astype(np.float32) / 255.0
    elif np.issubdtype(images.dtype, np.floating):
        images = images.astype(np.float32)
    else:
        raise DataError(f"{path}: images have unsupported dtype {images.dtype}")
    if classes is None:
        classes = [str(k) for k in range(int(labels.max()) + 1 if len(labels) else 0)]
    return Dataset(images, labels.astype(np.int64), tuple(classes), f"npz:{path}")


def _read_folder_raw(
    folder: Path, entries: list[Path], cfg: DataConfig, classes: tuple[str, ...] | None
) -> Dataset:
    from genline.data import read_image

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


# --- ingesting one day -------------------------------------------------------------------------


def ingest_batch(
    store: BatchStore,
    day: str,
    *,
    reference: ReferenceStats | None = None,
    config: ValidationConfig | None = None,
    data_cfg: DataConfig = DataConfig(),
    alert_sink: str | Path | None = None,
) -> IngestOutcome:
    """Validate the delivery for `day`; accept it into the store or move it to quarantine.

    Accepted: the batch is written canonically to `accepted/<day>/batch.npz` (re-ingesting the
    same delivery writes the same bytes). Rejected: the delivery folder moves to
    `quarantine/<day>/<UTC time>/delivery` beside its `validation.json`, and an alert is sent.

    Raises:
        DataError: there is no delivery for the day (nothing to accept or quarantine).
    """
    day = parse_day(day).isoformat()
    folder = store.delivery_dir(day)
    if not folder.is_dir():
        raise DataError(
            f"no delivery for {day}: {folder} does not exist (drop an .npz or class "
            "folders there, or enable the built-in simulation)"
        )
    cfg = config or ValidationConfig()
    expected_classes = cfg.classes or (reference.classes if reference else None)
    sha = delivery_sha256(folder)
    try:
        batch = read_delivery(folder, data_cfg, expected_classes)
        result = validate_dataset(batch, reference, cfg)
    except DataError as exc:
        batch, result = None, ValidationResult.unreadable(str(folder), str(exc))
    rows = len(batch) if batch is not None else 0
    if result.success and batch is not None:
        out_dir = store.accepted / day
        batch_path = save_npz(batch, out_dir / BATCH_FILE)
        result_path = out_dir / RESULT_FILE
        atomic_write_json(
            result_path,
            {"day": day, "delivery_sha256": sha, "status": "accepted", **result.to_dict()},
        )
        return IngestOutcome(day, "accepted", result, result_path, batch_path, sha, rows)

    qdir = _new_quarantine_dir(store, day, sha)
    result_path = qdir / RESULT_FILE
    atomic_write_json(
        result_path,
        {"day": day, "delivery_sha256": sha, "status": "quarantined", **result.to_dict()},
    )
    moved = qdir / "delivery"
    shutil.move(str(folder), str(moved))
    alert = send_alert(
        "data.validation",
        f"batch {day} quarantined: {result.summary()}"[:500],
        severity="critical",
        details={
            "day": day,
            "quarantine": str(qdir),
            "validation_result": str(result_path),
            "failed_checks": [c.name for c in result.failed_checks],
            "delivery_sha256": sha,
        },
        sink_dir=alert_sink,
    )
    return IngestOutcome(
        day, "quarantined", result, result_path, moved, sha, rows, alert["alert_id"]
    )


def _new_quarantine_dir(store: BatchStore, day: str, sha: str) -> Path:
    """A fresh quarantine/<day>/<UTC time>-<sha8>[-n] folder (never reuses an existing one).

    The suffix matters when the clock is pinned (or the same delivery is rejected twice within a
    second): the earlier quarantined delivery must never be overwritten.
    """
    base = clock.now().strftime("%Y%m%dT%H%M%SZ") + f"-{sha[:8]}"
    parent = store.quarantine / day
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        qdir = parent / (base if n == 1 else f"{base}-{n}")
        try:
            qdir.mkdir()
            return qdir
        except FileExistsError:
            continue
    raise DataError(f"{parent}: cannot create a new quarantine folder for {base}")


def accepted_days(store: BatchStore, as_of: str | None = None) -> list[str]:
    """Days with an accepted batch, oldest first, up to and including `as_of`."""
    if not store.accepted.is_dir():
        return []
    limit = parse_day(as_of) if as_of else None
    days = []
    for p in sorted(store.accepted.iterdir()):
        if (p / BATCH_FILE).is_file():
            try:
                d = parse_day(p.name)
            except DataError:
                continue
            if limit is None or d <= limit:
                days.append(d.isoformat())
    return days


def quarantined(store: BatchStore) -> list[dict[str, Any]]:
    """Every quarantined delivery with its validation summary, oldest first."""
    out = []
    if store.quarantine.is_dir():
        for result in sorted(store.quarantine.glob(f"*/*/{RESULT_FILE}")):
            d = read_json(result)
            out.append(
                {
                    "day": d.get("day"),
                    "path": str(result.parent),
                    "failed": d.get("failed", []),
                    "summary": "; ".join(
                        c["summary"] for c in d.get("checks", []) if not c["passed"]
                    ),
                }
            )
    return out


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
