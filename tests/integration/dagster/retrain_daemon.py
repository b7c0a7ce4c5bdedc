"""Drive the sensor daemon's own tick path for the retrain sensor tests (and a killed tick).

`KillAfterSubmitCoordinator` is the instance's run coordinator in those tests: Dagster's queued
coordinator (a submitted run is QUEUED and, with no run-queue daemon here, never starts: nothing
trains), plus the crash point `dagster.run_submitted` right after a run was submitted, before the
daemon records the run on its tick and saves the cursor. With GENLINE_KILL_AT naming it the
process SIGKILLs itself there (genline.faults).

`python -m tests.integration.dagster.retrain_daemon AT` runs one sensor-daemon iteration with
Dagster's clock frozen at epoch second AT, against $DAGSTER_HOME.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from dagster._core.run_coordinator.queued_run_coordinator import QueuedRunCoordinator

from genline.faults import kill_point

REPO_ROOT = Path(__file__).resolve().parents[3]
SENSOR = "drift_retrain_sensor"

DAGSTER_YAML = """\
telemetry:
  enabled: false
run_coordinator:
  module: tests.integration.dagster.retrain_daemon
  class: KillAfterSubmitCoordinator
"""


class KillAfterSubmitCoordinator(QueuedRunCoordinator):
    def submit_run(self, context):
        run = super().submit_run(context)
        kill_point("dagster.run_submitted")
        return run


def workspace(instance):
    """A workspace process context over the genline code location, as the daemon has one (the
    backfill test's too)."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget

    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            module_name="dagster_project.definitions",
            attribute="defs",
            working_directory=str(REPO_ROOT),
        ),
        location_name="genline",
    )
    return WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget([origin]))


def start_sensor(instance, context) -> None:
    """Turn the sensor on, as the UI's toggle does (it is declared STOPPED by default)."""
    location = context.create_request_context().get_code_location("genline")
    (repo,) = location.get_repositories().values()
    instance.start_sensor(repo.get_sensor(SENSOR))


def tick(context, at: float) -> None:
    """One iteration of the sensor daemon, with Dagster's clock at epoch second `at`."""
    from dagster._core.test_utils import freeze_time
    from dagster._daemon.sensor import execute_sensor_iteration

    with freeze_time(at):
        list(execute_sensor_iteration(context, logging.getLogger("sensor"), None, None))


def main(argv: list[str]) -> int:
    import dagster as dg

    at = float(argv[0])
    with dg.DagsterInstance.get() as instance, workspace(instance) as context:
        tick(context, at)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
