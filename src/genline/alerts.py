"""The alert hook: every part of genline reports trouble through `send_alert`.

For now the only receiver is a local file sink (one JSON object per line, appended and fsynced
under an exclusive lock, so concurrent writers never interleave or lose a record). Receivers for
real paging systems plug in behind the same function.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from genline.paths import alerts_dir

ALERTS_FILE = "alerts.jsonl"
SEVERITIES = ("info", "warning", "critical")


def send_alert(
    source: str,
    summary: str,
    *,
    severity: str = "critical",
    details: dict[str, Any] | None = None,
    sink_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Record an alert durably in the file sink.

    Args:
        source: what raised it, e.g. "publish", "data.validation", "kfp.pipeline".
        summary: one line a person on call can act on.
        severity: one of SEVERITIES.
        details: JSON-serialisable context (ids, paths, reasons).
        sink_dir: directory of the sink; defaults to `<state>/alerts`.

    Returns:
        The record written (with its `alert_id` and `time`).

    Raises:
        ValueError: on an unknown severity, empty summary or details that are not JSON.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} is not one of {SEVERITIES}")
    if not summary.strip():
        raise ValueError("an alert needs a non-empty summary")
    record = {
        "alert_id": uuid.uuid4().hex,
        "time": datetime.now(UTC).isoformat(),
        "source": source,
        "severity": severity,
        "summary": summary,
        "details": details or {},
        "host": socket.gethostname(),
    }
    line = json.dumps(record, sort_keys=True, default=str)  # fails before anything is written
    directory = Path(sink_dir) if sink_dir is not None else alerts_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ALERTS_FILE
    with open(path, "a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    return record


def read_alerts(sink_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """All alerts in the sink, oldest first (an empty list when there are none)."""
    directory = Path(sink_dir) if sink_dir is not None else alerts_dir()
    path = directory / ALERTS_FILE
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
