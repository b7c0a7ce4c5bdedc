"""Ingesting one day: validate the delivery, then accept it into the store or quarantine it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from genline.alerts import send_alert
from genline.data import DataConfig, DataError
from genline.fsutil import atomic_write_json
from genline.ingest.delivery import delivery_sha256, read_delivery
from genline.ingest.store import BATCH_FILE, RESULT_FILE, BatchStore, new_quarantine_dir, parse_day
from genline.npzfiles import save_npz
from genline.validation import ReferenceStats, ValidationConfig, ValidationResult, validate_dataset


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

    qdir = new_quarantine_dir(store, day, sha)
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
