"""The one place genline reads "now": UTC, pinnable for tests and demos.

    from genline import clock
    clock.now()     # timezone-aware datetime in UTC
    clock.today()   # date in UTC

Set GENLINE_NOW to an ISO timestamp (`2026-11-15T08:00:00Z`, `2026-11-15T08:00:00+01:00`, or a
bare date `2026-11-15`, meaning midnight UTC) to pin the clock. It is read at every call, so a
subprocess started with the variable sees the same "now" as its parent, and nothing is read at
import time. `pinned(...)` sets it for a `with` block (tests; restores the previous value).

A pinned clock does not move: every call returns the same instant. That is the point (a test's
"yesterday" must not change across midnight), so code that measures durations must use
`time.monotonic()`, never differences of `now()`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

ENV = "GENLINE_NOW"


class ClockError(ValueError):
    """GENLINE_NOW holds something that is not an ISO timestamp."""


def parse_timestamp(value: str | date | datetime) -> datetime:
    """An ISO timestamp, date or datetime as an aware datetime in UTC.

    Naive timestamps and bare dates are taken as UTC.

    Raises:
        ClockError: `value` is not ISO 8601.
    """
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, date):
        ts = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        try:
            # fromisoformat accepts "Z" since Python 3.11; bare dates give midnight
            ts = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ClockError(
                f"{ENV}={text!r} is not an ISO timestamp (e.g. 2026-11-15T08:00:00Z or 2026-11-15)"
            ) from exc
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


def now() -> datetime:
    """The current time in UTC (timezone-aware), or the pinned time when GENLINE_NOW is set.

    Raises:
        ClockError: GENLINE_NOW is set but malformed (never silently ignored: a test or demo that
            meant to pin the clock would otherwise run against the wall clock).
    """
    pinned_value = os.environ.get(ENV)
    if pinned_value:
        return parse_timestamp(pinned_value)
    return datetime.now(UTC)


def today() -> date:
    """Today's date in UTC, by `now()`."""
    return now().date()


def is_pinned() -> bool:
    """Whether GENLINE_NOW pins the clock."""
    return bool(os.environ.get(ENV))


@contextmanager
def pinned(value: str | date | datetime) -> Iterator[datetime]:
    """Pin the clock to `value` inside the block (through GENLINE_NOW, so subprocesses see it).

    Yields:
        The pinned instant, in UTC.
    """
    ts = parse_timestamp(value)
    previous = os.environ.get(ENV)
    os.environ[ENV] = ts.isoformat()
    try:
        yield ts
    finally:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous
