"""The alert hook: every part of genline reports trouble through `send_alert`.

`send_alert` is a thin facade over the alert router (`genline.alerting`): it turns the caller's
(source, summary, details) into an `Alert` (kind, subject and dedup key derived from the source
and its details), writes it to the durable outbox and delivers it to the file sink
(`alerts.jsonl`, always on) and whatever receivers the routing configuration names
(Alertmanager, PagerDuty, Slack). `read_alerts` reads the file sink.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from genline.alerting.model import SEVERITIES, Alert
from genline.alerting.receivers import ALERTS_FILE
from genline.alerting.router import Router
from genline.alerting.runs import current_run, dagster_subject
from genline.paths import alerts_dir

__all__ = ["ALERTS_FILE", "SEVERITIES", "legacy_alert", "read_alerts", "send_alert"]

# What each existing caller's source means as an alert kind.
SOURCE_KINDS = {
    "data.validation": "data.quarantine",
    "serving.publish": "publish.failed",
    "kfp.pipeline": "pipeline.failed",
    "dagster.run": "pipeline.failed",
}


def _subject(source: str, details: dict[str, Any]) -> str:
    """The incident subject the caller's details imply; a fresh id when they imply none."""
    if source == "data.validation" and details.get("day"):
        return f"{details['day']}:{str(details.get('delivery_sha256', ''))[:16]}"
    if source == "dagster.run" and details.get("run_id"):
        return dagster_subject(str(details["run_id"]))
    if source == "kfp.pipeline":
        owner = current_run()
        if owner:
            return owner
    return uuid.uuid4().hex  # no identity given: this alert is its own incident


def legacy_alert(
    source: str,
    summary: str,
    severity: str = "critical",
    details: dict[str, Any] | None = None,
    **fields: Any,
) -> Alert:
    """The `Alert` a `send_alert` call stands for (explicit `fields` win over derived ones)."""
    details = dict(details or {})
    json.dumps(details, default=str)  # fails before anything is written
    kind = fields.pop("kind", None) or SOURCE_KINDS.get(source, source)
    subject = fields.pop("subject", None) or _subject(source, details)
    version = fields.pop("version", None)
    if version is None and source == "serving.publish" and details.get("version") is not None:
        version = details["version"]
    return Alert(
        kind=kind,
        severity=severity,
        summary=summary,
        source=source,
        subject=subject,
        version=str(version) if version not in (None, "") else "",
        details=details,
        **fields,
    )


def send_alert(
    source: str,
    summary: str,
    *,
    severity: str = "critical",
    details: dict[str, Any] | None = None,
    sink_dir: str | Path | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Raise an alert through the router (outbox first, then the receivers).

    Args:
        source: what raised it, e.g. "serving.publish", "data.validation", "kfp.pipeline".
        summary: one line a person on call can act on.
        severity: one of SEVERITIES.
        details: JSON-serialisable context (ids, paths, reasons).
        sink_dir: the alerts directory; defaults to `<state>/alerts`.
        **fields: Alert fields to set explicitly: kind, subject, model, version, numbers,
            thresholds, links.

    Returns:
        The file-sink record of the incident (`alert_id` is the incident's id, the same for
        every firing of one incident), with `dedup_key`, `status` and `count`.

    Raises:
        ValueError: on an unknown severity, empty summary or details that are not JSON.
    """
    alert = legacy_alert(source, summary, severity, details, **fields)
    incident = Router(sink_dir).fire(alert)
    fired = Alert.from_dict(incident["alert"])
    return {
        "alert_id": incident["incident_id"],
        "time": incident["last_fired_at"],
        "source": fired.source,
        "kind": fired.kind,
        "severity": fired.severity,
        "summary": fired.summary,
        "details": fired.details,
        "dedup_key": incident["key"],
        "status": incident["status"],
        "count": incident["count"],
    }


def read_alerts(sink_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """All records in the file sink (triggers and resolves), oldest first ([] when none)."""
    directory = Path(sink_dir) if sink_dir is not None else alerts_dir()
    path = directory / ALERTS_FILE
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
