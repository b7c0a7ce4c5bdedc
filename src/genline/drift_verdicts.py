"""Drift verdicts: the one record every monitor writes and every consumer (the retrain sensor,
alerts, `genline lineage`, the demo timeline) reads.

A verdict answers one monitor's question for one (model, version, window). Its numbers are kept
forever in an append-only JSON-lines file under the state directory (`drift/verdicts.jsonl`);
HTML reports are linked by path and may be pruned by retention, the numbers never are.

Statuses: "drift" and "no_drift" are verdicts; "insufficient_data" (below the minimum sample
size: never drift, never no-drift) and "error" (a schema fault: a missing, renamed or all-null
feature column) are not, and consumers must not read them as either.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MONITORS = ("serving_health", "request_mix", "staleness", "input_batch")
STATUSES = ("drift", "no_drift", "insufficient_data", "error")
VERDICTS_FILE = "verdicts.jsonl"


class VerdictError(ValueError):
    """A verdict that cannot be recorded as given (unknown monitor or status, bad field)."""


@dataclass(frozen=True)
class Verdict:
    """One monitor's answer for one window of one served version.

    Attributes:
        monitor: one of MONITORS.
        status: one of STATUSES.
        model: the served model name.
        version: the served (Triton) version; 0 when it does not apply (input_batch).
        window_key: the Dagster partition key of the window (or the batch day).
        window_start, window_end: epoch seconds, start <= t < end.
        n: rows the verdict is based on.
        scores: per-feature (or per-test) statistic, e.g. {"label=3/mean_intensity": 0.12}.
        thresholds: the limits the scores were compared with, by the same keys or by test.
        drifted: the keys whose score crossed its threshold.
        reason: one line a person can read.
        reference: what the window was compared against (profile path, dataset md5, ...).
        report: path of the HTML report, when one was written.
        computed_at: epoch seconds (genline.clock) when the verdict was made.
        details: any other JSON-serialisable context (stat test names, sample sizes, ...).
    """

    monitor: str
    status: str
    model: str
    version: int
    window_key: str
    window_start: float
    window_end: float
    n: int
    scores: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    drifted: list[str] = field(default_factory=list)
    reason: str = ""
    reference: str = ""
    report: str | None = None
    computed_at: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.monitor not in MONITORS:
            raise VerdictError(f"unknown monitor {self.monitor!r} (known: {MONITORS})")
        if self.status not in STATUSES:
            raise VerdictError(f"unknown status {self.status!r} (known: {STATUSES})")
        if not self.model:
            raise VerdictError("a verdict needs the model name")
        if self.window_end < self.window_start:
            raise VerdictError(
                f"window_end {self.window_end} is before window_start {self.window_start}"
            )

    @property
    def is_drift(self) -> bool:
        return self.status == "drift"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Verdict:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in obj.items() if k in known})


def default_dir() -> Path:
    from genline.paths import state_dir

    return state_dir() / "drift"


def _path(directory: str | Path | None) -> Path:
    return (Path(directory) if directory is not None else default_dir()) / VERDICTS_FILE


def record_verdict(verdict: Verdict, directory: str | Path | None = None) -> Path:
    """Append one verdict (one JSON line, under an exclusive lock, fsynced).

    A crash leaves at most a torn last line, which `read_verdicts` skips; earlier records are
    never rewritten.

    Returns:
        The verdicts file.
    """
    path = _path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(verdict.to_json(), sort_keys=True, allow_nan=False) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    return path


def read_verdicts(
    monitor: str | None = None,
    model: str | None = None,
    version: int | None = None,
    since: float | None = None,
    directory: str | Path | None = None,
) -> list[Verdict]:
    """Recorded verdicts, oldest first, filtered by the arguments that are given.

    Args:
        monitor: one of MONITORS.
        model, version: of the served model.
        since: only verdicts computed at or after this epoch second.
        directory: the drift state directory (default `$GENLINE_HOME/drift`).
    """
    if monitor is not None and monitor not in MONITORS:
        raise VerdictError(f"unknown monitor {monitor!r} (known: {MONITORS})")
    path = _path(directory)
    if not path.exists():
        return []
    out: list[Verdict] = []
    for raw in _lines(path.read_text(encoding="utf-8").splitlines()):
        v = Verdict.from_json(raw)
        if monitor is not None and v.monitor != monitor:
            continue
        if model is not None and v.model != model:
            continue
        if version is not None and int(v.version) != int(version):
            continue
        if since is not None and v.computed_at < since:
            continue
        out.append(v)
    return out


def _lines(lines: Iterable[str]) -> Iterable[dict[str, Any]]:
    for line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:  # a torn last line from a crash mid-append
            continue
        if isinstance(obj, dict):
            yield obj
