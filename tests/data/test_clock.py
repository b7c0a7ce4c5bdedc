"""genline.clock: the pinnable "now" (GENLINE_NOW), read at call time."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime

import pytest

from genline import clock


def test_unpinned_is_aware_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(clock.ENV, raising=False)
    ts = clock.now()
    assert ts.tzinfo is not None and ts.utcoffset().total_seconds() == 0
    assert not clock.is_pinned()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-15", datetime(2026, 11, 15, tzinfo=UTC)),
        ("2026-11-15T08:30:00Z", datetime(2026, 11, 15, 8, 30, tzinfo=UTC)),
        ("2026-11-15T00:30:00+02:00", datetime(2026, 11, 14, 22, 30, tzinfo=UTC)),
        ("2026-11-15T08:30:00", datetime(2026, 11, 15, 8, 30, tzinfo=UTC)),
    ],
)
def test_env_pins_now_and_today(monkeypatch: pytest.MonkeyPatch, value, expected) -> None:
    monkeypatch.setenv(clock.ENV, value)
    assert clock.now() == expected
    assert clock.today() == expected.date()


def test_malformed_env_is_an_error_naming_the_variable(monkeypatch) -> None:
    monkeypatch.setenv(clock.ENV, "next tuesday")
    with pytest.raises(clock.ClockError, match="GENLINE_NOW='next tuesday'"):
        clock.now()


def test_pinned_restores_and_reaches_subprocesses(monkeypatch) -> None:
    monkeypatch.setenv(clock.ENV, "2030-01-01")
    with clock.pinned(date(2027, 3, 4)) as ts:
        assert ts == datetime(2027, 3, 4, tzinfo=UTC)
        out = subprocess.run(
            [sys.executable, "-c", "from genline import clock; print(clock.today())"],
            capture_output=True, text=True, check=True, env=dict(os.environ),
        ).stdout.strip()
        assert out == "2027-03-04"
    assert clock.today() == date(2030, 1, 1)
