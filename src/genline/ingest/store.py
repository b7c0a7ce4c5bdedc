"""The batch store: the drop folder, accepted batches and quarantine, by day.

<root>/incoming/<YYYY-MM-DD>/    deliveries: an .npz, or one subfolder per class of images
<root>/accepted/<YYYY-MM-DD>/    batch.npz (canonical) + validation.json of accepted batches
<root>/quarantine/<YYYY-MM-DD>/<UTC time>/
                                 a rejected delivery, moved as delivered, + validation.json
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date as Date
from pathlib import Path
from typing import Any

from genline import clock
from genline.data import DataError
from genline.fsutil import read_json
from genline.paths import state_dir

BATCH_FILE = "batch.npz"
RESULT_FILE = "validation.json"


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


def parse_day(day: str | Date) -> Date:
    if isinstance(day, Date):
        return day
    try:
        return Date.fromisoformat(str(day))
    except ValueError as exc:
        raise DataError(f"{day!r} is not a date in YYYY-MM-DD form") from exc


def new_quarantine_dir(store: BatchStore, day: str, sha: str) -> Path:
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
