"""The model of an alert: what fired, how bad, where, why (numbers and thresholds), and links.

An `Alert` is a value; its `dedup_key` is derived from (kind, model, version, subject), so the
same problem raised twice, by two processes or two launch paths, is one incident. An `Event` is
one thing that happened to an incident (trigger, update, resolve) and is what the outbox stores
and receivers deliver.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("info", "warning", "critical")
ACTIONS = ("trigger", "update", "resolve")

# Known kinds; each has a runbook section in docs/alerting.md (anchor: dots become dashes).
KINDS = (
    "data.quarantine",
    "pipeline.failed",
    "publish.failed",
    "publish.refused",
    "drift.serving",
    "drift.request_mix",
    "drift.stale_model",
    "drift.schema",
    "retrain.no_new_data",
    "retrain.challenger_lost",
    "alerting.dead_letter",
    "alerting.test",
)
RUNBOOK_DOC = "docs/alerting.md"
_KEY_SAFE = re.compile(r"[^A-Za-z0-9._:@/-]+")


class AlertError(ValueError):
    """An alert that cannot be raised as given (unknown severity, empty summary, ...)."""


def runbook_anchor(kind: str) -> str:
    """The runbook section of `kind` in docs/alerting.md, e.g. `#pipeline-failed`."""
    return "#" + kind.replace(".", "-").replace("_", "-")


def dedup_key(kind: str, model: str = "", version: str = "", subject: str = "") -> str:
    """The identity of an incident: `kind/model/version/subject`, readable and at most 255 chars.

    PagerDuty's dedup_key limit is 255 characters; longer keys keep a readable prefix and end in
    a hash of the whole, so distinct long keys stay distinct.
    """
    parts = [kind, model or "-", str(version) if version not in ("", None) else "-", subject or "-"]
    key = "/".join(_KEY_SAFE.sub("_", p) for p in parts)
    if len(key) > 255:
        key = key[:230] + "~" + hashlib.sha256(key.encode()).hexdigest()[:24]
    return key


@dataclass(frozen=True)
class Alert:
    """One alert as raised by a part of genline.

    Attributes:
        kind: what went wrong, e.g. "pipeline.failed" (see KINDS; other dotted names are allowed).
        severity: "info", "warning" or "critical".
        summary: one line a person on call can act on.
        source: which part raised it ("kfp.pipeline", "dagster.run", "data.validation", ...).
        model: the model it concerns, when it concerns one.
        version: the model or dataset version, when one applies.
        subject: what within (kind, model, version) this is about: a run id, a day, a column.
        numbers: the measured values that fired it, e.g. {"fd_ratio": 2.1}.
        thresholds: the limits they were compared against, e.g. {"fd_ratio": 1.5}.
        links: name -> URL or path ("report", "dagster_run", "runbook").
        details: any other JSON-serialisable context.
    """

    kind: str
    severity: str
    summary: str
    source: str = ""
    model: str = ""
    version: str = ""
    subject: str = ""
    numbers: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise AlertError(f"severity {self.severity!r} is not one of {SEVERITIES}")
        if not self.summary or not self.summary.strip():
            raise AlertError("an alert needs a non-empty summary")
        if not self.kind or not self.kind.strip():
            raise AlertError("an alert needs a kind, e.g. 'pipeline.failed'")

    @property
    def dedup_key(self) -> str:
        return dedup_key(self.kind, self.model, str(self.version or ""), self.subject)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class Event:
    """One change of an incident, as stored in the outbox and delivered to receivers.

    Attributes:
        seq: position in the outbox (order of occurrence across all processes).
        action: "trigger" (a new incident), "update" (fired again while open), "resolve".
        incident_id: stable id of the incident (the `alert_id` of the file sink's records).
        key: the incident's dedup key.
        time: ISO timestamp (genline.clock) of the event.
        started_at: when the incident opened.
        alert: the alert as last fired.
        receivers: the receivers this event was routed to when it was written.
        count: how many times the incident has fired so far.
    """

    seq: int
    action: str
    incident_id: str
    key: str
    time: str
    started_at: str
    alert: Alert
    receivers: tuple[str, ...]
    count: int = 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["receivers"] = list(self.receivers)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        return cls(
            seq=int(data["seq"]),
            action=data["action"],
            incident_id=data["incident_id"],
            key=data["key"],
            time=data["time"],
            started_at=data["started_at"],
            alert=Alert.from_dict(data["alert"]),
            receivers=tuple(data["receivers"]),
            count=int(data.get("count", 1)),
        )
