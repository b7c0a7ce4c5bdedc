"""Materializations through a real Dagster instance and a real DVC remote (local directory)."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg
import numpy as np
import pytest

from genline.alerts import read_alerts
from genline.ingest import BatchStore, accepted_days, simulated_batches, simulated_day_index
from genline.validation import CHECK_NAMES
from genline.versioning import DvcConfig, list_versions, md5_file

from .conftest import REPO_ROOT, run_ingest, run_training_dataset

pytestmark = pytest.mark.integration

TD = dg.AssetKey("training_dataset")
IB = dg.AssetKey("incoming_batch")


def checks_of(result) -> dict[str, tuple[bool, str | None]]:
    return {e.check_name: (e.passed, e.partition) for e in result.get_asset_check_evaluations()}


def latest_data_version(instance, key=TD) -> str | None:
    event = instance.get_latest_materialization_event(key)
    return event.asset_materialization.tags.get("dagster/data_version") if event else None


def test_partitions_then_versioned_training_dataset(defs, instance, state):
    days = ["2026-11-01", "2026-11-02", "2026-11-03"]
    for day in days:
        result = run_ingest(defs, instance, day)
        assert result.success
        evaluations = checks_of(result)
        assert set(evaluations) == {*CHECK_NAMES, "batch_matches_training_data"}
        assert all(passed and part == day for passed, part in evaluations.values())
        mat = result.asset_materializations_for_node("incoming_batch")[0]
        assert mat.partition == day and mat.metadata["status"].value == "accepted"
    assert accepted_days(BatchStore.default()) == days

    result = run_training_dataset(defs, instance)
    assert result.success
    value = result.output_for_node("training_dataset")
    rows = sum(len(simulated_batches(28)[simulated_day_index(d, None, 28)]) for d in days)
    assert value["num_rows"] == rows and value["accepted_days"] == days
    assert md5_file(value["path"]) == value["dvc_md5"]
    assert latest_data_version(instance) == value["dvc_md5"]
    assert checks_of(result)["training_dataset_restorable"][0]
    mat = result.asset_materializations_for_node("training_dataset")[0]
    assert mat.metadata["dvc_md5"].value == value["dvc_md5"]
    assert mat.metadata["samples"].value.startswith("![samples](data:image/png;base64,")
    cfg = DvcConfig.default(state)
    assert [v.md5 for v in list_versions(cfg)] == [value["dvc_md5"]]

    # The CLI restores the recorded version byte for byte (from the remote: cache removed).
    import shutil

    shutil.rmtree(cfg.repo_dir / ".dvc" / "cache")
    out = state / "restored.npz"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "genline.cli",
            "data",
            "checkout",
            value["dvc_md5"][:8],
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == open(value["path"], "rb").read()

    # A later batch is checked against the accepted reference (the versioned dataset).
    result = run_ingest(defs, instance, "2026-11-04")
    evaluation = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "class_intensity_matches_reference"
    ][0]
    assert evaluation.passed and not evaluation.metadata["skipped"].value


def _deliver(state, day: str, images, labels) -> None:
    folder = BatchStore.default().delivery_dir(day)
    folder.mkdir(parents=True)
    np.savez(
        folder / "batch.npz",
        images=images,
        labels=labels,
        classes=np.array([str(k) for k in range(10)]),
    )


def _fault(kind: str):
    good = simulated_batches(28)[5]
    images, labels = good.images.copy(), good.labels.copy()
    if kind == "nan":
        images[2, 0, 3, 3] = np.nan
        return images, labels, {"no_nan_or_inf"}
    if kind == "wrong_shape":
        return np.repeat(np.repeat(images, 2, 2), 2, 3), labels, {"image_shape_matches"}
    if kind == "label_outside_set":
        labels[4] = 12
        return images, labels, {"labels_in_set"}
    if kind == "empty":
        return images[:0], labels[:0], {"has_min_rows", "all_classes_present"}
    if kind == "inverted":
        return 1.0 - images, labels, {"background_is_dark"}
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["nan", "wrong_shape", "label_outside_set", "empty", "inverted"])
def test_bad_batch_is_quarantined_alerted_and_never_reaches_training(defs, instance, state, kind):
    assert run_ingest(defs, instance, "2026-11-01").success
    first = run_training_dataset(defs, instance).output_for_node("training_dataset")
    images, labels, expected_failures = _fault(kind)
    _deliver(state, "2026-11-02", images, labels)

    result = run_ingest(defs, instance, "2026-11-02")
    assert not result.success  # the blocking checks fail the run
    failed = {name for name, (passed, _) in checks_of(result).items() if not passed}
    assert expected_failures <= failed
    mat = result.asset_materializations_for_node("incoming_batch")[0]
    assert mat.metadata["status"].value == "quarantined"
    qdir = mat.metadata["quarantine"].value
    alerts = [a for a in read_alerts() if a["source"] == "data.validation"]
    assert len(alerts) == 1 and alerts[0]["details"]["quarantine"] == qdir
    assert set(alerts[0]["details"]["failed_checks"]) >= expected_failures
    assert (state / "quarantine" / "2026-11-02").is_dir()
    assert accepted_days(BatchStore.default()) == ["2026-11-01"]

    # A rebuild excludes the quarantined batch: same rows, same version.
    again = run_training_dataset(defs, instance).output_for_node("training_dataset")
    assert again["dvc_md5"] == first["dvc_md5"] and again["num_rows"] == first["num_rows"]

    # The failure sensor turns the failed run into an alert as well.
    from dagster_project.defs.resources import AlertSinkResource
    from dagster_project.defs.sensors import run_failure_alert_sensor

    failure = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[
        0
    ].dagster_event
    ctx = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),
    ).for_run_failure()
    run_failure_alert_sensor(ctx, alert_sink=AlertSinkResource())
    assert any(
        a["source"] == "dagster.run" and a["details"]["run_id"] == result.run_id
        for a in read_alerts()
    )


def test_blocking_check_stops_downstream_in_the_same_run(defs, instance, state):
    assert run_ingest(defs, instance, "2026-11-01").success
    run_training_dataset(defs, instance)
    images, labels, _ = _fault("nan")
    _deliver(state, "2026-11-02", images, labels)
    from dagster_project.defs.assets import incoming_batch, training_dataset

    result = dg.materialize(
        [incoming_batch, training_dataset],
        partition_key="2026-11-02",
        instance=instance,
        raise_on_error=False,
        resources=defs.get_repository_def().get_top_level_resources(),
    )
    assert not result.success
    assert result.asset_materializations_for_node("training_dataset") == []
    skipped = [e for e in result.all_events if e.step_key == "training_dataset"]
    assert not any(e.is_successful_output for e in skipped)


def test_same_batch_twice_gives_the_same_version(defs, instance, state):
    assert run_ingest(defs, instance, "2026-11-01").success
    v1 = run_training_dataset(defs, instance).output_for_node("training_dataset")
    assert run_ingest(defs, instance, "2026-11-01").success  # redelivered, re-ingested
    r2 = run_training_dataset(defs, instance)
    v2 = r2.output_for_node("training_dataset")
    assert v2["dvc_md5"] == v1["dvc_md5"] and v2["num_rows"] == v1["num_rows"]
    assert (
        r2.asset_materializations_for_node("training_dataset")[0].metadata["new_version"].value
        is False
    )
    assert len(list_versions(DvcConfig.default(state))) == 1


@pytest.mark.parametrize("remote", ["closed_port", "read_only_http"])
def test_unreachable_or_read_only_remote_fails_and_version_does_not_advance(
    defs, instance, state, remote, read_only_http_remote
):
    assert run_ingest(defs, instance, "2026-11-01").success
    v1 = run_training_dataset(defs, instance).output_for_node("training_dataset")
    assert run_ingest(defs, instance, "2026-11-02").success  # new data to version
    url = {"closed_port": "http://127.0.0.1:9/remote", "read_only_http": read_only_http_remote}[
        remote
    ]
    result = run_training_dataset(
        defs, instance, run_config={"resources": {"dvc_remote": {"config": {"remote_url": url}}}}
    )
    assert not result.success
    failure = [e for e in result.all_events if e.is_step_failure][0]
    message = (
        failure.step_failure_data.error.cause.message
        if failure.step_failure_data.error.cause
        else failure.step_failure_data.error.message
    )
    assert "dvc push" in message and "not advanced" in message
    assert latest_data_version(instance) == v1["dvc_md5"]
    versions = list_versions(DvcConfig.default(state))
    assert [v.md5 for v in versions] == [v1["dvc_md5"]]


@pytest.mark.slow  # two fresh interpreters importing Dagster, GX and DVC
def test_two_materializations_at_once_serialise(defs, instance, state, tmp_path):
    for day in ("2026-11-01", "2026-11-02"):
        assert run_ingest(defs, instance, day).success
    script = (
        "import sys, dagster as dg\n"
        f"sys.path.insert(0, {str(REPO_ROOT)!r})\n"
        "from dagster_project.definitions import defs\n"
        "job = defs().resolve_job_def('training_dataset_job')\n"
        "as_of = sys.argv[1]\n"
        "r = job.execute_in_process(instance=dg.DagsterInstance.get(), raise_on_error=False,\n"
        "    run_config={'ops': {'training_dataset': {'config': {'as_of': as_of}}}})\n"
        "print('OK' if r.success else 'FAILED', r.output_for_node('training_dataset')['dvc_md5']"
        " if r.success else '')\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, day],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for day in ("2026-11-01", "2026-11-02")
    ]
    outs = [p.communicate(timeout=240)[0].splitlines()[-1:][0].split() for p in procs]
    assert all(o and o[0] == "OK" for o in outs), outs
    cfg = DvcConfig.default(state)
    versions = list_versions(cfg)
    assert {v.md5 for v in versions} == {o[1] for o in outs} and len(versions) == 2
    subprocess.run(
        ["git", "-C", str(cfg.repo_dir), "fsck", "--strict"], check=True, capture_output=True
    )
    status = subprocess.run(
        ["git", "-C", str(cfg.repo_dir), "status", "--porcelain"], capture_output=True, text=True
    ).stdout
    assert status == ""
