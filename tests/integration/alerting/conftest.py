import sys
from pathlib import Path

import pytest

here = Path(__file__).resolve().parent
# am_fixture.py and the unit tests' receiver_fixture.py: importlib mode puts neither on sys.path
sys.path.insert(0, str(here))
sys.path.insert(0, str(here.parents[1] / "unit" / "alerting"))


@pytest.fixture(autouse=True)
def _no_ambient_receivers(monkeypatch):
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


@pytest.fixture()
def alertmanager(tmp_path):
    import am_fixture

    if am_fixture.binary() is None:
        pytest.skip(am_fixture.INSTALL_HINT)
    proc, url = am_fixture.start(tmp_path / "am")
    yield url
    am_fixture.stop(proc)
