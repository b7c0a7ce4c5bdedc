"""Sensors: new deliveries in the drop folder start an ingest run; failed runs raise an alert;
the alert outbox is flushed every tick."""

import dagster as dg

from genline.ingest import delivery_sha256

from .jobs import ingest_job
from .partitions import partition_keys
from .resources import AlertSinkResource, GenlineStateResource


@dg.sensor(job=ingest_job, minimum_interval_seconds=60)
def incoming_delivery_sensor(
    context: dg.SensorEvaluationContext, genline_state: GenlineStateResource
):
    """One ingest run per delivery in incoming/<YYYY-MM-DD>/ (a changed delivery runs again)."""
    incoming = genline_state.store().incoming
    if not incoming.is_dir():
        return dg.SkipReason(f"{incoming} does not exist yet")
    valid = set(partition_keys())  # up to yesterday by genline.clock
    requests = []
    for folder in sorted(p for p in incoming.iterdir() if p.is_dir()):
        if folder.name not in valid or not any(folder.iterdir()):
            continue
        sha = delivery_sha256(folder)
        requests.append(
            dg.RunRequest(partition_key=folder.name, run_key=f"{folder.name}:{sha[:16]}")
        )
    return requests or dg.SkipReason(f"no deliveries in {incoming}")


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alert_sink: AlertSinkResource):
    """Every failed run of this code location goes to the alert hook."""
    run = context.dagster_run
    alert_sink.send(
        "dagster.run",
        f"Dagster run {run.run_id[:8]} of {run.job_name} failed: "
        f"{context.failure_event.message or 'see the run log'}"[:500],
        severity="warning",
        details={"run_id": run.run_id, "job": run.job_name, "tags": dict(run.tags)},
    )


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def alert_outbox_sensor(context: dg.SensorEvaluationContext, alert_sink: AlertSinkResource):
    """Deliver alerts left in the outbox (a receiver was down, a sender was killed)."""
    report = alert_sink.flush()
    delivered = sum(report.delivered.values())
    return dg.SkipReason(f"alert outbox: delivered {delivered}, pending {report.pending}")
