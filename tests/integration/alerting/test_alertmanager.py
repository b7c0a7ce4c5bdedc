"""A real Alertmanager: fire through the router, read it back from its API, resolve it."""

from __future__ import annotations

from datetime import timedelta

import am_fixture
import pytest

from genline import clock
from genline.alerting import Alert, AlertingConfig, Router

pytestmark = pytest.mark.integration


def test_fire_read_back_resolve_on_a_real_alertmanager(alertmanager, tmp_path):
    # Alertmanager judges endsAt by its own clock: pin genline's to the moment the test starts
    start = clock.now()
    cfg = AlertingConfig(alertmanager_url=alertmanager, hold_down_s=0, backoff_s=0.01)
    router = Router(tmp_path / "alerts", cfg)
    alert = Alert(
        "drift.serving",
        "warning",
        "genline_generator drifted: psi 0.31 > 0.2",
        source="monitor",
        model="genline_generator",
        version="7",
        subject="pixel_mean",
        numbers={"psi": 0.31},
        thresholds={"psi": 0.2},
        links={"report": "https://reports.example/drift.html"},
    )
    with clock.pinned(start):
        router.fire(alert)
    (got,) = am_fixture.alerts(alertmanager, filter=f'dedup_key="{alert.dedup_key}"')
    assert got["labels"] == {
        "alertname": "drift.serving",
        "severity": "warning",
        "model": "genline_generator",
        "version": "7",
        "dedup_key": alert.dedup_key,
        "source": "genline",
    }
    notes = got["annotations"]
    assert notes["summary"] == alert.summary
    assert "psi=0.31 (threshold 0.2)" in notes["description"]
    assert notes["runbook_url"] == "docs/alerting.md#drift-serving"
    assert notes["report_url"] == "https://reports.example/drift.html"
    assert got["status"]["state"] == "active"
    assert abs(clock.parse_timestamp(got["startsAt"]) - start) < timedelta(milliseconds=1)
    assert clock.parse_timestamp(got["endsAt"]) > start + timedelta(days=6)  # open

    with clock.pinned(start):
        router.fire(alert)  # an update: still one alert in Alertmanager
    assert len(am_fixture.alerts(alertmanager, filter=f'dedup_key="{alert.dedup_key}"')) == 1

    # endsAt must not be ahead of Alertmanager's clock, or it keeps the later endsAt it has
    with clock.pinned(start):
        router.resolve(alert.dedup_key)
    active = am_fixture.alerts(alertmanager, filter=f'dedup_key="{alert.dedup_key}"')
    assert active == []  # the API lists no resolved alert: Alertmanager sees it resolved
    assert router.incidents(open_only=True) == []
