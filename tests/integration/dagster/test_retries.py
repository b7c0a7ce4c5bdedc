"""The retry policy: a DVC remote that is unavailable for the first attempt ends in one
materialization; a failure about the data is not retried."""

from __future__ import annotations

import threading
import time

import dagster as dg
import pytest

from dagster_project.defs.retries import TRANSIENT_RETRY
from genline.versioning import DvcConfig, list_versions

from .conftest import run_ingest, run_training_dataset

pytestmark = pytest.mark.integration


def _event_types(result) -> list[str]:
    return [e.event_type_value for e in result.all_events]


def _on_first_retry(instance, fix) -> threading.Thread:
    """Run `fix` once the instance's event log shows a STEP_UP_FOR_RETRY (the first attempt
    failed): Dagster's own record of the failure, read from the real SQLite event log."""

    before = {r.run_id for r in instance.get_runs()}

    def watch() -> None:
        while True:
            for run in instance.get_runs(limit=1):
                if run.run_id in before:  # the run to watch has not been created yet
                    continue
                records = instance.all_logs(
                    run.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY
                )
                if records:
                    fix()
                    return
                if run.is_finished:
                    return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_remote_unavailable_once_then_one_materialization(defs, instance, state, tmp_path):
    assert run_ingest(defs, instance, "2026-11-01").success
    blocker = tmp_path / "nfs"  # the remote's mount point is not there yet: a plain file
    blocker.write_text("not mounted")
    remote = blocker / "dvc_remote"
    watcher = _on_first_retry(instance, blocker.unlink)  # the mount comes back meanwhile
    result = run_training_dataset(
        defs,
        instance,
        run_config={"resources": {"dvc_remote": {"config": {"remote_url": str(remote)}}}},
    )
    watcher.join(timeout=60)
    types = _event_types(result)
    assert result.success, [e.message for e in result.all_events if "FAILURE" in e.event_type_value]
    # the first attempt failed on the remote and was retried (a loaded machine may need two)
    assert types.count("STEP_UP_FOR_RETRY") >= 1 and "STEP_FAILURE" not in types
    failed = next(e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY")
    assert "NotADirectoryError" in str(failed.event_specific_data.error)
    assert len(result.asset_materializations_for_node("training_dataset")) == 1
    versions = list_versions(DvcConfig.default(state, remote_url=str(remote)))
    assert len(versions) == 1 and (remote / "files").is_dir()


def test_a_failure_about_the_data_is_not_retried(defs, instance, state):
    result = run_training_dataset(defs, instance)  # nothing accepted yet
    assert not result.success
    types = _event_types(result)
    assert "STEP_UP_FOR_RETRY" not in types and types.count("STEP_FAILURE") == 1
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "no accepted batches" in failure.message or "no accepted batches" in str(
        failure.event_specific_data.error
    )


def test_assets_that_talk_to_remotes_carry_the_policy(defs):
    job = defs.resolve_implicit_global_asset_job_def()
    for key in ("training_dataset", "generator_model"):
        assert job.graph.node_named(key).definition.retry_policy == TRANSIENT_RETRY
