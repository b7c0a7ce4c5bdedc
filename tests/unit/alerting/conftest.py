import sys
from pathlib import Path

import pytest

# receiver_fixture.py lives next to this file; --import-mode=importlib does not put it on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from genline import clock  # noqa: E402

T0 = "2026-11-15T08:00:00+00:00"


@pytest.fixture()
def pinned_clock():
    """genline.clock pinned at T0; call the yielded function to move it to T0 + seconds."""
    from datetime import timedelta

    start = clock.parse_timestamp(T0)
    with clock.pinned(start):

        def move(seconds: float) -> None:
            import os

            os.environ[clock.ENV] = (start + timedelta(seconds=seconds)).isoformat()

        yield move


@pytest.fixture(autouse=True)
def _no_ambient_receivers(monkeypatch):
    """No receiver is configured from the developer's environment."""
    for name in (
        "GENLINE_ALERTMANAGER_URL",
        "GENLINE_PAGERDUTY_ROUTING_KEY",
        "GENLINE_PAGERDUTY_URL",
        "GENLINE_SLACK_WEBHOOK_URL",
        "GENLINE_ALERTING_CONFIG",
        "GENLINE_ALERT_RUN",
        "GENLINE_KILL_AT",
    ):
        monkeypatch.delenv(name, raising=False)
