"""The alert router: one path from every part of genline to every receiver.

    router = Router()                       # <state>/alerts, config from load_config()
    router.fire(Alert("pipeline.failed", "critical", "genline-training failed", subject=run))
    router.resolve(key)                     # closes it (after the hold-down, unless immediate)
    router.flush()                          # delivers whatever is still pending

`fire` writes the event to the durable outbox (fsynced) before any receiver is tried, then
delivers for a bounded time (`send_budget_s`); what is left is delivered by the next `fire`,
`flush` (`genline alerts flush`, the Dagster sensor tick) in order of occurrence, once per
receiver. Firing an open incident updates it (one incident, receivers that dedup are told);
a resolve waits `hold_down_s` and a re-fire inside that window cancels it, so a flapping signal
is one incident. After `max_attempts` failed tries (or one refusal such as HTTP 400) an event
is dead-lettered with the last error, and an `alerting.dead_letter` alert goes to the file sink.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from genline import clock
from genline.alerting.config import AlertingConfig, load_config
from genline.alerting.model import SEVERITIES, Alert, Event, runbook_anchor
from genline.alerting.outbox import Outbox, State
from genline.alerting.receivers import Outcome, Receiver, build_receivers
from genline.faults import kill_point
from genline.paths import alerts_dir

RUNBOOK_BASE = "docs/alerting.md"
MAX_PASSES = 50  # delivery passes per call (new events may arrive while delivering)


@dataclass
class FlushReport:
    """What one delivery call did.

    Attributes:
        delivered: per receiver, how many events it accepted.
        answers: per receiver, the last answer it gave ("202 ...", "unreachable: ...").
        dead_lettered: events given up on in this call (receiver, seq, error).
        pending: events still in the outbox afterwards.
        busy: another process held the delivery lock for the whole wait.
    """

    delivered: dict[str, int] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)
    dead_lettered: list[tuple[str, int, str]] = field(default_factory=list)
    pending: int = 0
    busy: bool = False
    stalled: set[str] = field(default_factory=set)  # receivers that ran out of time this call


def _merge(old: Alert, new: Alert) -> Alert:
    """An update of an open incident: the newest values, the highest severity seen, and the
    details and links of both (a second reporter adds to what the first said)."""
    rank = SEVERITIES.index
    severity = max(old.severity, new.severity, key=rank)
    return replace(
        new,
        severity=severity,
        details={**old.details, **new.details},
        links={**old.links, **new.links},
        numbers={**old.numbers, **new.numbers},
        thresholds={**old.thresholds, **new.thresholds},
    )


class Router:
    """Routes alerts through the outbox to the configured receivers.

    Args:
        directory: the alerts directory (outbox, snapshot, file sink); default `<state>/alerts`.
        config: routing and delivery policy; default `load_config()`.
        receivers: receivers by name (tests may pass their own); default `build_receivers`.
    """

    def __init__(
        self,
        directory: str | Path | None = None,
        config: AlertingConfig | None = None,
        receivers: dict[str, Receiver] | None = None,
    ) -> None:
        self.directory = Path(directory) if directory is not None else alerts_dir()
        self.config = config if config is not None else load_config()
        self.outbox = Outbox(self.directory)
        self.receivers = receivers or build_receivers(self.config, self.directory)

    # ----- incidents -------------------------------------------------------------------------

    def _with_runbook(self, alert: Alert) -> Alert:
        if "runbook" in alert.links:
            return alert
        links = {**alert.links, "runbook": RUNBOOK_BASE + runbook_anchor(alert.kind)}
        return replace(alert, links=links)

    def _event(
        self,
        state: State,
        action: str,
        key: str,
        alert: Alert,
        incident_id: str,
        started_at: str,
        at: str,
        count: int,
        receivers: tuple[str, ...],
    ) -> Event:
        return Event(
            state.seq + 1, action, incident_id, key, at, started_at, alert, receivers, count
        )

    def _routes(self, alert: Alert, action: str, only: tuple[str, ...] | None) -> tuple[str, ...]:
        names = only if only is not None else self.config.receivers_for(alert.kind, alert.severity)
        if action == "update":  # only receivers that fold repeats into one incident
            names = tuple(n for n in names if self.receivers[n].dedups)
        return names

    def _due_resolves(self, state: State, now_iso: str) -> None:
        """Emit resolves whose hold-down has passed (inside the lock)."""
        now = clock.parse_timestamp(now_iso)
        hold = timedelta(seconds=self.config.hold_down_s)
        for key, inc in sorted(state.incidents.items(), key=lambda kv: kv[1]["opened_at"]):
            requested = inc.get("resolve_requested_at")
            if inc["status"] != "open" or not requested:
                continue
            if now >= clock.parse_timestamp(requested) + hold:
                self._emit_resolve(state, key, inc, requested)

    def _emit_resolve(self, state: State, key: str, inc: dict[str, Any], at: str) -> Event:
        alert = Alert.from_dict(inc["alert"])
        receivers = tuple(inc.get("receivers") or self._routes(alert, "resolve", None))
        event = self._event(
            state,
            "resolve",
            key,
            alert,
            inc["incident_id"],
            inc["opened_at"],
            at,
            inc["count"],
            receivers,
        )
        self.outbox.append(state, event)
        return event

    def fire(
        self,
        alert: Alert,
        *,
        deliver: bool = True,
        receivers: tuple[str, ...] | None = None,
    ) -> dict[str, Any]:
        """Raise `alert`: open an incident, or update the open one with the same dedup key.

        Args:
            alert: what fired.
            deliver: try the receivers now (bounded by `send_budget_s`); False = outbox only.
            receivers: send to exactly these (e.g. `genline alerts test`); default: the routes.

        Returns:
            The incident after the change (incident_id, key, status, count, ...).
        """
        alert = self._with_runbook(alert)
        key = alert.dedup_key
        now = clock.now().isoformat()
        with self.outbox.locked() as state:
            self._due_resolves(state, now)
            inc = state.incidents.get(key)
            if inc is not None and inc["status"] == "open":
                if inc.get("resolve_requested_at"):
                    inc["flaps"] = inc.get("flaps", 0) + 1  # cleared and fired inside hold-down
                    inc["resolve_requested_at"] = None
                alert = _merge(Alert.from_dict(inc["alert"]), alert)
                routed = self._routes(alert, "update", receivers)
                event = self._event(
                    state,
                    "update",
                    key,
                    alert,
                    inc["incident_id"],
                    inc["opened_at"],
                    now,
                    inc["count"] + 1,
                    routed,
                )
            else:
                routed = self._routes(alert, "trigger", receivers)
                event = self._event(
                    state, "trigger", key, alert, uuid.uuid4().hex, now, now, 1, routed
                )
            self.outbox.append(state, event)
            state.incidents[key]["receivers"] = sorted(
                set(state.incidents[key].get("receivers", [])) | set(routed)
            )
            self.outbox.save(state)
            incident = dict(state.incidents[key])
        kill_point("alerting.after_outbox_write")
        if deliver:
            self.deliver(self.config.send_budget_s)
        return incident

    def resolve(self, key: str, *, immediate: bool = False, deliver: bool = True) -> dict[str, Any]:
        """Close the open incident `key`.

        Args:
            key: the dedup key.
            immediate: resolve now (a person closing it); otherwise the resolve is held for
                `hold_down_s` and cancelled by a re-fire inside that window.
            deliver: try the receivers now.

        Returns:
            The incident after the change.

        Raises:
            KeyError: no incident has that key.
        """
        now = clock.now().isoformat()
        with self.outbox.locked() as state:
            inc = state.incidents.get(key)
            if inc is None:
                known = ", ".join(sorted(state.incidents)[:5]) or "none"
                raise KeyError(f"no incident with key {key!r} (some known keys: {known})")
            if inc["status"] == "open":
                if immediate or self.config.hold_down_s <= 0:
                    self._emit_resolve(state, key, inc, now)
                elif not inc.get("resolve_requested_at"):
                    inc["resolve_requested_at"] = now
                self._due_resolves(state, now)
            self.outbox.save(state)
            incident = dict(state.incidents[key])
        if deliver:
            self.deliver(self.config.send_budget_s)
        return incident

    def incidents(self, open_only: bool = False) -> list[dict[str, Any]]:
        """Incidents (oldest first); `open_only` keeps those not resolved."""
        with self.outbox.locked() as state:
            items = list(state.incidents.values())
        items.sort(key=lambda i: i["opened_at"])
        return [i for i in items if not open_only or i["status"] == "open"]

    # ----- delivery --------------------------------------------------------------------------

    def flush(self, budget_s: float | None = None) -> FlushReport:
        """Deliver everything pending (and resolves whose hold-down has passed).

        Args:
            budget_s: how long to keep retrying; default enough for every receiver to reach
                `max_attempts` with the configured backoff.
        """
        with self.outbox.locked() as state:
            before = state.seq
            self._due_resolves(state, clock.now().isoformat())
            if state.seq != before:
                self.outbox.save(state)
        if budget_s is None:
            c = self.config
            budget_s = (
                sum(min(c.backoff_s * 2**i, c.backoff_max_s) for i in range(c.max_attempts))
                + c.max_attempts * c.timeout_s
            )
        return self.deliver(budget_s)

    def _backoff(self, attempts: int, outcome: Outcome) -> float:
        delay = min(self.config.backoff_s * 2 ** max(attempts - 1, 0), self.config.backoff_max_s)
        if outcome.retry_after is not None:
            delay = min(max(delay, outcome.retry_after), self.config.backoff_max_s)
        return delay

    def _try(self, name: str, event: Event) -> Outcome:
        if name not in self.config.enabled() and name in ("alertmanager", "pagerduty", "slack"):
            return Outcome(False, True, f"{name} is not configured here")
        try:
            return self.receivers[name].deliver(event)
        except Exception as exc:  # a receiver bug must not lose the event: retry, then dead-letter
            return Outcome(False, True, f"{type(exc).__name__}: {exc}")

    def deliver(self, budget_s: float) -> FlushReport:
        """Deliver pending events, per receiver in seq order, for at most about `budget_s`."""
        report = FlushReport()
        deadline = time.monotonic() + budget_s
        with self.outbox.delivering(wait_s=min(budget_s, 2 * self.config.timeout_s)) as mine:
            if not mine:
                report.busy = True
                report.pending = len(self.outbox.pending())
                return report
            for _ in range(MAX_PASSES):
                progressed = self._deliver_pass(report, deadline)
                if not progressed:
                    break
            with self.outbox.locked() as state:
                report.pending = self.outbox.compact(state)
        return report

    def _deliver_pass(self, report: FlushReport, deadline: float) -> bool:
        """One pass over pending events; True when something was delivered or dead-lettered."""
        with self.outbox.locked() as state:
            events = self.outbox.pending()
            cursors = {r: dict(c) for r, c in state.cursors.items()}
        progressed = False
        names = sorted({r for e in events for r in e.receivers}, key=lambda r: r != "file")
        for name in names:
            if name in report.stalled:
                continue
            cursor = cursors.get(name, {"seq": 0, "attempts": 0})
            for event in [e for e in events if name in e.receivers and e.seq > cursor["seq"]]:
                done = self._deliver_one(name, event, report, deadline)
                if not done:
                    report.stalled.add(name)
                    break  # keep order: nothing later goes to `name` before this event
                progressed = True
        return progressed

    def _deliver_one(self, name: str, event: Event, report: FlushReport, deadline: float) -> bool:
        """Deliver `event` to `name`, retrying with backoff inside the deadline.

        Returns:
            True when the event is handled (delivered or dead-lettered), False when it is
            still pending (the deadline came first).
        """
        for _ in range(self.config.max_attempts + 1):
            outcome = self._try(name, event)
            report.answers[name] = outcome.detail
            with self.outbox.locked() as state:
                cur = state.cursor(name)
                if cur["seq"] >= event.seq:  # another process handled it meanwhile
                    return True
                if outcome.ok:
                    cur.update(seq=event.seq, attempts=0, last_error="")
                    self.outbox.save(state)
                    report.delivered[name] = report.delivered.get(name, 0) + 1
                    return True
                cur["attempts"] = int(cur.get("attempts", 0)) + 1
                cur["last_error"] = outcome.detail
                attempts = cur["attempts"]
                if not outcome.retry or attempts >= self.config.max_attempts:
                    self.outbox.dead_letter(event, name, outcome.detail, attempts)
                    cur.update(seq=event.seq, attempts=0, last_error="")
                    report.dead_lettered.append((name, event.seq, outcome.detail))
                    self._notify_dead_letter(state, name, event, outcome.detail, attempts)
                    self.outbox.save(state)
                    return True
                self.outbox.save(state)
            delay = self._backoff(attempts, outcome)
            if time.monotonic() + delay > deadline:
                return False
            time.sleep(delay)
        return False

    def _notify_dead_letter(
        self, state: State, receiver: str, event: Event, error: str, attempts: int
    ) -> None:
        """An alert about the dead letter, to the file sink only (inside the lock)."""
        if event.alert.kind == "alerting.dead_letter":
            return
        notice = self._with_runbook(
            Alert(
                "alerting.dead_letter",
                "warning",
                f"{receiver} did not take alert {event.key} ({event.action}) after "
                f"{attempts} tries: {error}"[:500],
                source="alerting",
                subject=f"{receiver}:{event.incident_id}:{event.seq}",
                details={
                    "receiver": receiver,
                    "seq": event.seq,
                    "error": error,
                    "dead_letter_file": str(self.outbox.deadletter_path),
                },
            )
        )
        now = clock.now().isoformat()
        dl_event = self._event(
            state, "trigger", notice.dedup_key, notice, uuid.uuid4().hex, now, now, 1, ("file",)
        )
        self.outbox.append(state, dl_event)
        state.incidents[notice.dedup_key]["receivers"] = ["file"]
