"""Receivers: the file sink, Alertmanager, PagerDuty Events API v2 and Slack incoming webhooks.

Each receiver turns an `Event` into its documented wire format and answers with an `Outcome`:
delivered, retryable (connection refused, timeouts, 429, 5xx) or permanent (a 4xx that says the
request itself is wrong: retrying the same bytes cannot succeed, so it is dead-lettered).
`dedups` says whether the receiver folds repeats of an incident into one (Alertmanager by label
set, PagerDuty by dedup_key); only those receive "update" events.

Secrets (routing key, webhook URL) are read from the environment at delivery time and appear in
no outcome, log line or stored record.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from genline import clock
from genline.alerting.config import AlertingConfig
from genline.alerting.model import Event

ALERTS_FILE = "alerts.jsonl"
PD_SUMMARY_MAX = 1024  # Events API v2: payload.summary is truncated by PagerDuty at 1024 chars
PD_SEVERITY = {"info": "info", "warning": "warning", "critical": "critical"}
SLACK_TEXT_MAX = 3000  # a section block's text limit
SLACK_FIELDS_MAX = 10  # fields per section block
_PERMANENT_HTTP = {400, 401, 403, 404, 405, 410, 413, 422}


@dataclass(frozen=True)
class Outcome:
    """What a receiver answered.

    Attributes:
        ok: delivered (the receiver accepted it).
        retry: not delivered, but a later try may succeed.
        detail: the status and a short reason ("202 success", "503 ...", "connection refused").
        status: the HTTP status when there was one.
        retry_after: seconds the receiver asked us to wait (429 Retry-After).
    """

    ok: bool
    retry: bool
    detail: str
    status: int | None = None
    retry_after: float | None = None


class Receiver(Protocol):
    name: str
    dedups: bool

    def deliver(self, event: Event) -> Outcome: ...


def post_json(url: str, body: Any, timeout_s: float) -> Outcome:
    """POST `body` as JSON; classify the answer (2xx ok, 429/5xx/network retry, 4xx permanent).

    The URL is never part of the returned detail (a Slack webhook URL is a secret).
    """
    data = json.dumps(body, default=str).encode()
    req = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            text = resp.read(2000).decode("utf-8", "replace")
            return Outcome(True, False, f"{resp.status} {text.strip()[:200]}", resp.status)
    except urllib.error.HTTPError as exc:
        text = exc.read(2000).decode("utf-8", "replace").strip()[:300]
        retry_after = None
        header = exc.headers.get("Retry-After") if exc.headers else None
        if header:
            try:
                retry_after = float(header)
            except ValueError:
                retry_after = None
        retry = exc.code == 429 or exc.code >= 500 or exc.code not in _PERMANENT_HTTP
        return Outcome(False, retry, f"{exc.code} {text}", exc.code, retry_after)
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Outcome(False, True, f"unreachable: {type(reason).__name__}: {reason}")


def _last_line(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 65536))
        lines = [ln for ln in fh.read().splitlines() if ln.strip()]
    if not lines:
        return None
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        return None


def file_record(event: Event) -> dict[str, Any]:
    """The file sink's line for an event (the fields `read_alerts` callers have always seen)."""
    a = event.alert
    return {
        "alert_id": event.incident_id,
        "seq": event.seq,
        "action": event.action,
        "time": event.time,
        "started_at": event.started_at,
        "source": a.source or a.kind,
        "kind": a.kind,
        "severity": a.severity,
        "summary": a.summary,
        "model": a.model,
        "version": a.version,
        "subject": a.subject,
        "dedup_key": event.key,
        "numbers": a.numbers,
        "thresholds": a.thresholds,
        "links": a.links,
        "details": a.details,
        "count": event.count,
        "host": socket.gethostname(),
    }


class FileSink:
    """`alerts.jsonl`: one JSON line per trigger and resolve, appended and fsynced under a lock.

    Idempotent: a line is written once per event even if the process died after writing it and
    before the outbox recorded the delivery (the last line's `seq` is checked first).
    """

    name = "file"
    dedups = False

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / ALERTS_FILE

    def deliver(self, event: Event) -> Outcome:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(file_record(event), sort_keys=True, default=str)
        with open(self.path, "a", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                last = _last_line(self.path)
                if last is not None and int(last.get("seq", -1)) >= event.seq:
                    return Outcome(True, False, f"already written (seq {event.seq})")
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return Outcome(True, False, f"written to {self.path}")


def _description(event: Event) -> str:
    a = event.alert
    parts = []
    for name, value in a.numbers.items():
        limit = a.thresholds.get(name)
        parts.append(f"{name}={value}" + (f" (threshold {limit})" if limit is not None else ""))
    for name, limit in a.thresholds.items():
        if name not in a.numbers:
            parts.append(f"{name} threshold {limit}")
    where = " ".join(p for p in (a.model, f"v{a.version}" if a.version else "") if p)
    head = f"{a.kind} {where}".strip()
    return f"{head}: " + ("; ".join(parts) if parts else a.summary)


def alertmanager_alert(event: Event, config: AlertingConfig) -> dict[str, Any]:
    """One postable alert of Alertmanager's /api/v2/alerts for `event`.

    Labels identify the alert (Alertmanager dedups by label set): alertname (the kind),
    severity, model, version and the genline dedup key. A firing alert carries an endsAt
    `am_open_s` ahead (Alertmanager resolves an alert nobody re-sends); a resolve carries the
    time the incident was resolved.
    """
    a = event.alert
    labels = {
        "alertname": a.kind,
        "severity": a.severity,
        "model": a.model or "-",
        "version": str(a.version) if a.version else "-",
        "dedup_key": event.key,
        "source": "genline",
    }
    annotations = {
        "summary": a.summary,
        "description": _description(event),
        "runbook_url": a.links.get("runbook", ""),
        "report_url": a.links.get("report", ""),
    }
    if a.links.get("dagster_run"):
        annotations["dagster_run_url"] = a.links["dagster_run"]
    started = clock.parse_timestamp(event.started_at)
    if event.action == "resolve":
        ends = max(clock.parse_timestamp(event.time), started)
    else:
        ends = clock.parse_timestamp(event.time) + timedelta(seconds=config.am_open_s)
    body: dict[str, Any] = {
        "labels": labels,
        "annotations": {k: v for k, v in annotations.items() if v},
        "startsAt": started.isoformat().replace("+00:00", "Z"),
        "endsAt": ends.isoformat().replace("+00:00", "Z"),
    }
    run = a.links.get("dagster_run", "")
    if run.startswith(("http://", "https://")):
        body["generatorURL"] = run
    return body


class AlertmanagerReceiver:
    """POST /api/v2/alerts (a JSON array of postable alerts)."""

    name = "alertmanager"
    dedups = True

    def __init__(self, config: AlertingConfig) -> None:
        self.config = config

    def deliver(self, event: Event) -> Outcome:
        url = f"{self.config.alertmanager_url}/api/v2/alerts"
        return post_json(url, [alertmanager_alert(event, self.config)], self.config.timeout_s)


def pagerduty_event(event: Event, routing_key: str) -> dict[str, Any]:
    """The Events API v2 body for `event` (trigger for trigger/update, resolve for resolve)."""
    a = event.alert
    if event.action == "resolve":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": event.key}
    summary = a.summary if len(a.summary) <= PD_SUMMARY_MAX else a.summary[: PD_SUMMARY_MAX - 1]
    links = [
        {"href": href, "text": name}
        for name, href in a.links.items()
        if str(href).startswith(("http://", "https://"))
    ]
    details = {
        "kind": a.kind,
        "model": a.model,
        "version": a.version,
        "numbers": a.numbers,
        "thresholds": a.thresholds,
        "links": a.links,
        "count": event.count,
        **{k: v for k, v in a.details.items() if k not in {"numbers", "thresholds"}},
    }
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": event.key,
        "payload": {
            "summary": summary,
            "source": a.source or "genline",
            "severity": PD_SEVERITY[a.severity],
            "timestamp": event.time,
            "component": a.model or "genline",
            "group": a.kind.split(".")[0],
            "class": a.kind,
            "custom_details": details,
        },
        "client": "genline",
    }
    if links:
        body["links"] = links
    return body


class PagerDutyReceiver:
    """POST the Events API v2 enqueue endpoint; the routing key from the environment."""

    name = "pagerduty"
    dedups = True

    def __init__(self, config: AlertingConfig) -> None:
        self.config = config

    def deliver(self, event: Event) -> Outcome:
        key = os.environ.get(self.config.pagerduty_key_env, "")
        if not key:
            return Outcome(False, True, f"${self.config.pagerduty_key_env} is not set")
        return post_json(
            self.config.pagerduty_url, pagerduty_event(event, key), self.config.timeout_s
        )


def slack_message(event: Event) -> dict[str, Any]:
    """An incoming-webhook message: `text` (the fallback) plus blocks with numbers and links."""
    a = event.alert
    state = "RESOLVED" if event.action == "resolve" else a.severity.upper()
    text = f"[{state}] {a.summary}"[:SLACK_TEXT_MAX]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"[:SLACK_TEXT_MAX]}}
    ]
    fields = [
        {"type": "mrkdwn", "text": f"*{name}*\n{value}"}
        for name, value in (("kind", a.kind), ("model", a.model), ("version", a.version))
        if value
    ]
    for name, value in a.numbers.items():
        limit = a.thresholds.get(name)
        shown = f"{value}" + (f" (threshold {limit})" if limit is not None else "")
        fields.append({"type": "mrkdwn", "text": f"*{name}*\n{shown}"})
    if fields:
        blocks.append({"type": "section", "fields": fields[:SLACK_FIELDS_MAX]})
    links = [f"<{href}|{name}>" for name, href in a.links.items() if href]
    if links:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " | ".join(links)}]}
        )
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"dedup key `{event.key}`"}]}
    )
    return {"text": text, "blocks": blocks}


class SlackReceiver:
    """POST to the incoming webhook whose URL is in the environment."""

    name = "slack"
    dedups = False

    def __init__(self, config: AlertingConfig) -> None:
        self.config = config

    def deliver(self, event: Event) -> Outcome:
        url = os.environ.get(self.config.slack_url_env, "")
        if not url:
            return Outcome(False, True, f"${self.config.slack_url_env} is not set")
        return post_json(url, slack_message(event), self.config.timeout_s)


def build_receivers(config: AlertingConfig, directory: Path) -> dict[str, Receiver]:
    """Every receiver by name (configured or not: delivery to an unconfigured one is retried)."""
    return {
        "file": FileSink(directory),
        "alertmanager": AlertmanagerReceiver(config),
        "pagerduty": PagerDutyReceiver(config),
        "slack": SlackReceiver(config),
    }
