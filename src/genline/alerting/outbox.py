"""The durable outbox: events are written here, fsynced, before any receiver is tried.

Layout of an alerts directory (`<state>/alerts` unless a caller names another):

    outbox.jsonl       pending events, one JSON line each, in order of occurrence (`seq`)
    state.json         snapshot: incidents by dedup key, the last applied seq, per-receiver
                       cursors (the last seq handled) and failed-attempt counts
    deadletter.jsonl   events a receiver refused or kept failing, with the last error
    alerts.jsonl       the file sink (written by receivers.FileSink)
    .lock              held (flock) while the outbox or the snapshot change
    .deliver.lock      held while one process delivers (so an event is delivered once)

Crash safety: an event is appended (and fsynced) to the outbox first; the snapshot is written
after it, atomically. On load, outbox lines newer than the snapshot are replayed onto the
incidents, so a process killed between the two loses nothing and opens no second incident.
Several processes (kfp steps, a Dagster sensor, the CLI) may append at once: each append and
snapshot is made under the exclusive lock, so lines never interleave and seqs never repeat.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genline.alerting.model import Event
from genline.fsutil import atomic_write_bytes

OUTBOX_FILE = "outbox.jsonl"
STATE_FILE = "state.json"
DEADLETTER_FILE = "deadletter.jsonl"
LOCK_FILE = ".lock"
DELIVER_LOCK_FILE = ".deliver.lock"
MAX_RESOLVED_KEPT = 1000  # resolved incidents kept in the snapshot (oldest dropped first)


class OutboxError(RuntimeError):
    """The outbox or its snapshot is unreadable; the message names the file."""


@dataclass
class State:
    """The snapshot: incidents, the last seq applied, and per-receiver delivery cursors."""

    seq: int = 0
    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)
    cursors: dict[str, dict[str, Any]] = field(default_factory=dict)

    def cursor(self, receiver: str) -> dict[str, Any]:
        return self.cursors.setdefault(receiver, {"seq": 0, "attempts": 0, "last_error": ""})


def apply_event(incidents: dict[str, dict[str, Any]], event: Event) -> None:
    """Fold one event into the incidents (the same code for live writes and crash replay)."""
    inc = incidents.get(event.key)
    if event.action == "trigger" or inc is None:
        incidents[event.key] = {
            "incident_id": event.incident_id,
            "key": event.key,
            "status": "open" if event.action != "resolve" else "resolved",
            "opened_at": event.started_at,
            "last_fired_at": event.time,
            "resolved_at": event.time if event.action == "resolve" else None,
            "resolve_requested_at": None,
            "count": event.count,
            "flaps": 0,
            "alert": event.alert.to_dict(),
        }
        return
    if event.action == "update":
        inc.update(status="open", last_fired_at=event.time, count=event.count)
        inc["alert"] = event.alert.to_dict()
    elif event.action == "resolve":
        inc.update(status="resolved", resolved_at=event.time, resolve_requested_at=None)


class Outbox:
    """The outbox of one alerts directory. Cheap to construct; nothing is read until used."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.outbox_path = self.directory / OUTBOX_FILE
        self.state_path = self.directory / STATE_FILE
        self.deadletter_path = self.directory / DEADLETTER_FILE

    @contextmanager
    def locked(self) -> Iterator[State]:
        """Hold the exclusive lock; yield the current state (snapshot + replayed outbox).

        Changes made to the yielded state are not saved unless `save(state)` is called inside.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self._load()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextmanager
    def delivering(self, wait_s: float) -> Iterator[bool]:
        """Try to become the one delivering process for up to `wait_s`; yield whether we are."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / DELIVER_LOCK_FILE, "a") as lock:
            deadline = time.monotonic() + wait_s
            got = False
            for _ in range(100_000):  # bounded: polls every 10 ms until the deadline
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    got = True
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(0.01)
            try:
                yield got
            finally:
                if got:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def _read_outbox(self) -> list[Event]:
        if not self.outbox_path.exists():
            return []
        events = []
        with open(self.outbox_path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    events.append(Event.from_dict(json.loads(line)))
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    if not line.endswith("\n"):  # a torn last line of a killed writer
                        break
                    raise OutboxError(f"{self.outbox_path}:{n}: unreadable event: {exc}") from exc
        return events

    def _load(self) -> State:
        state = State()
        if self.state_path.exists():
            try:
                raw = json.loads(self.state_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise OutboxError(f"{self.state_path}: unreadable snapshot: {exc}") from exc
            state = State(int(raw["seq"]), raw["incidents"], raw["cursors"])
        for event in self._read_outbox():
            if event.seq > state.seq:  # written, then killed before the snapshot was saved
                apply_event(state.incidents, event)
                state.seq = event.seq
        return state

    def pending(self) -> list[Event]:
        """Events in the outbox (delivered ones are compacted away), oldest first."""
        return self._read_outbox()

    def append(self, state: State, event: Event) -> None:
        """Append one event (fsynced) and fold it into `state`. Call inside `locked()`."""
        line = json.dumps(event.to_dict(), sort_keys=True, default=str)
        with open(self.outbox_path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        apply_event(state.incidents, event)
        state.seq = event.seq

    def save(self, state: State) -> None:
        """Write the snapshot atomically (inside `locked()`)."""
        resolved = [k for k, v in state.incidents.items() if v["status"] == "resolved"]
        if len(resolved) > MAX_RESOLVED_KEPT:
            resolved.sort(key=lambda k: state.incidents[k].get("resolved_at") or "")
            for k in resolved[: len(resolved) - MAX_RESOLVED_KEPT]:
                del state.incidents[k]
        body = {"seq": state.seq, "incidents": state.incidents, "cursors": state.cursors}
        atomic_write_bytes(self.state_path, json.dumps(body, sort_keys=True, default=str).encode())

    def compact(self, state: State) -> int:
        """Drop events every routed receiver has handled; return how many remain (in `locked()`)."""
        events = self._read_outbox()
        keep = [e for e in events if any(state.cursor(r)["seq"] < e.seq for r in e.receivers)]
        if len(keep) != len(events):
            text = "".join(json.dumps(e.to_dict(), sort_keys=True) + "\n" for e in keep)
            atomic_write_bytes(self.outbox_path, text.encode())
        return len(keep)

    def dead_letter(self, event: Event, receiver: str, error: str, attempts: int) -> None:
        """Record an event a receiver will not get, with the last error (fsynced)."""
        record = {
            "receiver": receiver,
            "error": error,
            "attempts": attempts,
            "event": event.to_dict(),
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.deadletter_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def dead_letters(self) -> list[dict[str, Any]]:
        if not self.deadletter_path.exists():
            return []
        with open(self.deadletter_path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
