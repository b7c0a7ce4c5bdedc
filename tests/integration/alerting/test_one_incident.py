"""One pipeline failure is one incident, whether the daemon, the UI or the CLI launched the run.

A real Dagster instance (SQLite in a temp DAGSTER_HOME), a real dataset version (ingest and
training_dataset materialized), and real failing kfp.local pipeline runs: `generator_model`
launches the pipeline with an unknown training preset, so validate-dataset passes, the train
step fails at once and the exit handler alerts. For runs launched by the daemon or the UI,
Dagster's run-failure sensor also sees the failure (evaluated here with
`build_run_status_sensor_context`, as the daemon does); a run executed in process from the CLI
gets no sensor. Each path must end with exactly one open `pipeline.failed` incident for its run
and exactly one alert in the file sink.
"""

from __future__ import annotations

import pytest

from genline.alerts import read_alerts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LAUNCHES = {
    # tags Dagster puts on runs by launch path; the sensor reacts to all of them alike
    "daemon": {"dagster/sensor_name": "incoming_delivery_sensor"},
    "ui": {"dagster/from_ui": "true"},
    "cli": {},
}


@pytest.fixture()
def dagster_env(tmp_path, monkeypatch):
    import dagster as dg

    from tests.integration.dagster.conftest import DAGSTER_YAML

    monkeypatch.setenv("GENLINE_NOW", "2026-11-29T12:00:00Z")
    home = tmp_path / "state"
    monkeypatch.setenv("GENLINE_HOME", str(home))
    monkeypatch.delenv("GENLINE_DVC_REMOTE_URL", raising=False)
    dhome = tmp_path / "dagster_home"
    dhome.mkdir()
    (dhome / "dagster.yaml").write_text(DAGSTER_YAML)
    monkeypatch.setenv("DAGSTER_HOME", str(dhome))
    with dg.DagsterInstance.get() as instance:
        yield instance, home


def _sensor_sees(instance, run_id: str) -> None:
    import dagster as dg

    from dagster_project.defs.resources import AlertSinkResource
    from dagster_project.defs.sensors import run_failure_alert_sensor

    failure = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[0]
    ctx = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_event=failure.dagster_event,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(run_id),
    ).for_run_failure()
    run_failure_alert_sensor(ctx, alert_sink=AlertSinkResource())


def test_a_failed_pipeline_run_is_one_incident_however_launched(dagster_env):
    from dagster_project.definitions import defs as location
    from genline.alerting import Router
    from tests.integration.dagster.conftest import run_ingest, run_training_dataset

    instance, home = dagster_env
    defs = location()
    assert run_ingest(defs, instance, "2026-11-01").success
    assert run_training_dataset(defs, instance).success
    bad_preset = {"ops": {"generator_model": {"config": {"preset": "no-such-preset"}}}}
    job = defs.resolve_job_def("training_job")
    seen: dict[str, str] = {}
    for launch, tags in LAUNCHES.items():
        before = len(read_alerts())
        result = job.execute_in_process(
            instance=instance, run_config=bad_preset, tags=tags, raise_on_error=False
        )
        assert not result.success
        if launch != "cli":  # Dagster evaluates run-status sensors only for launched runs
            _sensor_sees(instance, result.run_id)
        new = read_alerts()[before:]
        assert len(new) == 1, f"{launch}: {len(new)} alerts for one failure: {new}"
        (alert,) = new
        assert alert["kind"] == "pipeline.failed" and alert["source"] == "kfp.pipeline"
        assert alert["subject"] == f"dagster:{result.run_id}"
        incidents = [
            i for i in Router().incidents(open_only=True) if i["key"] == alert["dedup_key"]
        ]
        (incident,) = incidents
        assert incident["count"] == (1 if launch == "cli" else 2)  # the sensor updated it
        assert incident["alert"]["severity"] == "critical"  # the sensor's warning did not lower it
        seen[launch] = incident["incident_id"]
    assert len(set(seen.values())) == 3  # three failures, three incidents
    pipeline_incidents = [i for i in Router().incidents() if i["key"].startswith("pipeline.")]
    assert len(pipeline_incidents) == 3
