"""A real Dagster instance (SQLite, in a temp DAGSTER_HOME) and a fresh genline state per test.

Runs launched through the instance (backfills, sensors) execute synchronously in this process
(SyncInMemoryRunLauncher), so a test sees their results without a daemon.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.data.remotes import read_only_http_remote  # noqa: F401  (a fixture)

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:  # dagster_project/ lives at the repository root
    sys.path.insert(0, str(REPO_ROOT))

DAGSTER_YAML = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
run_launcher:
  module: dagster._core.launcher.sync_in_memory_run_launcher
  class: SyncInMemoryRunLauncher
"""


# Every Dagster test runs at this clock unless it pins another: the simulated window is then
# 2026-11-01..2026-11-28 and the last partition 2026-11-28. No test depends on the wall clock.
PINNED_NOW = "2026-11-29T12:00:00Z"


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch: pytest.MonkeyPatch) -> str:
    """Pin genline.clock (GENLINE_NOW, so subprocesses see it too)."""
    from genline import clock

    monkeypatch.setenv(clock.ENV, PINNED_NOW)
    return PINNED_NOW


@pytest.fixture()
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "state"
    monkeypatch.setenv("GENLINE_HOME", str(home))
    monkeypatch.delenv("GENLINE_DVC_REMOTE_URL", raising=False)
    return home


@pytest.fixture()
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: Path):
    import dagster as dg

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as inst:
        yield inst


@pytest.fixture()
def defs():
    from dagster_project.definitions import defs as location

    return location()


def run_ingest(defs, instance, day: str, **kwargs):
    return defs.resolve_job_def("ingest_job").execute_in_process(
        partition_key=day, instance=instance, raise_on_error=False, **kwargs
    )


def run_training_dataset(defs, instance, **kwargs):
    return defs.resolve_job_def("training_dataset_job").execute_in_process(
        instance=instance, raise_on_error=False, **kwargs
    )
