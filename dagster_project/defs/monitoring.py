"""Drift monitoring of what the generator serves: partitioned assets over the prediction log.

One time-window partition per drift window (hourly by default; `window` in drift.toml or
GENLINE_DRIFT_WINDOW, e.g. "2min" for the demo). Three assets judge each window, one verdict per
version that answered in it (`genline.monitoring.evaluate_window`):

- `serving_health_drift`: served outputs per label vs the version's reference profile
  (drift.serving, critical, no retrain);
- `request_mix_drift`: label shares vs the traffic baseline, z vs N(0, I) (drift.request_mix);
- `staleness_drift`: served outputs vs the newest accepted real data, against the same comparison
  at publish (drift.stale_model; the retrain sensor reads these verdicts).

Every verdict is recorded (`genline.drift_verdicts`), alerts go through the alert resource, and
the materialization's metadata carries the verdict, per-feature scores and thresholds and the
HTML report as a file:// link. `drift_job` backfills any range from the UI (after a threshold
change, say); `drift_schedule` runs the window that just ended at each window boundary.

The partitions definition is fixed when the location loads (its start is a constant, like the
daily partitions'); the window length is read then, in the `@dg.definitions` function below,
never at import.
"""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from genline import clock, contract
from genline.monitoring import MonitorPaths, alert_for, evaluate_window

from .resources import AlertSinkResource

DRIFT_PARTITIONS_START = "2026-11-01-00:00"  # a fixed first window (UTC), see the docstring
PARTITION_FMT = "%Y-%m-%d-%H:%M"
ASSETS = {
    "serving_health_drift": "serving_health",
    "request_mix_drift": "request_mix",
    "staleness_drift": "staleness",
}


def window_cron(window_s: float) -> str:
    """The cron schedule of windows of `window_s` seconds, aligned to the clock.

    Raises:
        ValueError: a length that does not tile an hour (minutes) or a day (hours) evenly.
    """
    s = int(window_s)
    if s != window_s or s < 60 or s % 60:
        raise ValueError(f"a drift window must be whole minutes, got {window_s} s")
    minutes = s // 60
    if minutes < 60:
        if 60 % minutes:
            raise ValueError(f"a {minutes}-minute drift window does not divide the hour")
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    if minutes % 60 or 24 % (minutes // 60):
        raise ValueError(f"a drift window of {minutes} minutes does not divide the day")
    hours = minutes // 60
    return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"


def drift_partitions(window_s: float) -> dg.TimeWindowPartitionsDefinition:
    """Windows of `window_s` seconds from DRIFT_PARTITIONS_START, in UTC."""
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule=window_cron(window_s),
        start=datetime.strptime(DRIFT_PARTITIONS_START, PARTITION_FMT).replace(tzinfo=UTC),
        fmt=PARTITION_FMT,
        timezone="UTC",
    )


def latest_complete_window(partitions: dg.TimeWindowPartitionsDefinition) -> str | None:
    """The key of the last window that has ended by `genline.clock.now()` (None: none yet)."""
    with dg.partition_loading_context(effective_dt=clock.now()):
        window = partitions.get_last_partition_window()
    if window is None:
        return None
    return window.start.strftime(PARTITION_FMT)


class DriftMonitorResource(dg.ConfigurableResource):
    """Where the drift monitors read and write; empty means genline's default under the state
    dir (the prediction log, registry, profiles, verdicts, reports)."""

    model: str = contract.MODEL_NAME
    repository: str = "triton_repo"
    predlog_dir: str = ""
    registry_path: str = ""
    profile_dir: str = ""
    verdict_dir: str = ""
    report_dir: str = ""
    state_root: str = ""

    def paths(self) -> MonitorPaths:
        def opt(value: str) -> Path | None:
            return Path(value) if value else None

        return MonitorPaths(
            predlog_dir=opt(self.predlog_dir),
            repository=Path(self.repository),
            registry_path=opt(self.registry_path),
            profile_dir=opt(self.profile_dir),
            verdict_dir=opt(self.verdict_dir),
            report_dir=opt(self.report_dir),
            state_root=opt(self.state_root),
        )


def _metadata(verdicts) -> dict[str, dg.MetadataValue]:
    order = ("error", "drift", "insufficient_data", "no_drift")
    worst = min((v.status for v in verdicts), key=order.index)
    meta: dict[str, dg.MetadataValue] = {
        "verdict": dg.MetadataValue.text(worst),
        "versions": dg.MetadataValue.json(
            {
                str(v.version): {
                    "status": v.status,
                    "n": v.n,
                    "reason": v.reason,
                    "drifted": list(v.drifted),
                    "report": v.report,
                }
                for v in verdicts
            }
        ),
        "n": dg.MetadataValue.int(sum(v.n for v in verdicts)),
    }
    for v in verdicts:
        prefix = f"v{v.version} " if len(verdicts) > 1 else ""  # a window spanning a publish
        meta[prefix + "scores"] = dg.MetadataValue.json(dict(v.scores))
        meta[prefix + "thresholds"] = dg.MetadataValue.json(dict(v.thresholds))
        if v.report:
            url = "file://" + str(Path(v.report).resolve())
            meta[prefix + "report"] = dg.MetadataValue.url(url)
            meta[prefix + "report_path"] = dg.MetadataValue.path(str(v.report))
    return meta


def _drift_asset(asset_name: str, monitor: str, partitions, window_s: float):
    @dg.asset(
        name=asset_name,
        partitions_def=partitions,
        group_name="monitoring",
        kinds={"evidently"},
        description=f"The {monitor} verdict of one drift window ({window_s:g} s) of the "
        "prediction log, per served version.",
    )
    def _asset(
        context: dg.AssetExecutionContext,
        drift_monitor: DriftMonitorResource,
        alert_sink: AlertSinkResource,
    ) -> dg.MaterializeResult:
        from genline.drift import DriftConfig

        cfg = DriftConfig.load()  # at run time: a backfill after a threshold change uses it
        window = context.partition_time_window
        paths = drift_monitor.paths()
        verdicts = evaluate_window(
            monitor,
            context.partition_key,
            window.start.timestamp(),
            window.end.timestamp(),
            cfg,
            paths,
            model=drift_monitor.model,
        )
        for verdict in verdicts:
            kwargs = alert_for(verdict)
            if kwargs is not None:
                if verdict.report:
                    kwargs["links"]["dagster_run"] = context.run.run_id
                alert_sink.send(kwargs.pop("source"), kwargs.pop("summary"), **kwargs)
            context.log.info(
                f"{monitor} {context.partition_key} v{verdict.version}: {verdict.status} "
                f"(n={verdict.n}) {verdict.reason}"
            )
        # HTML reports are pruned to cfg.report_keep as they are written (genline.drift)
        return dg.MaterializeResult(metadata=_metadata(verdicts))

    return _asset


# the served versions' directories (evaluator, embedding, serving.json) are in this repository:
# the same variable the retrain policy reads, bound only when set and read by Dagster at run time
REPOSITORY_ENV = "GENLINE_MODEL_REPOSITORY"


def drift_monitor_resource() -> DriftMonitorResource:
    """The drift monitor resource: defaults, with the model repository from REPOSITORY_ENV."""
    import os

    if os.environ.get(REPOSITORY_ENV):
        return DriftMonitorResource(repository=dg.EnvVar(REPOSITORY_ENV))
    return DriftMonitorResource()


@dg.definitions
def monitoring() -> dg.Definitions:
    """The drift assets, their job and schedule, at the configured window length (read when the
    location loads)."""
    from genline.drift import DriftConfig

    window_s = DriftConfig.load().window_minutes * 60
    partitions = drift_partitions(window_s)
    assets = [_drift_asset(name, mon, partitions, window_s) for name, mon in ASSETS.items()]
    drift_job = dg.define_asset_job(
        "drift_job",
        selection=dg.AssetSelection.assets(*ASSETS),
        partitions_def=partitions,
        description="Judge drift windows of the prediction log (backfill a range from the UI).",
    )
    schedule = dg.build_schedule_from_partitioned_job(
        drift_job,
        name="drift_schedule",
        description="At each window boundary, judge the window that just ended.",
    )
    return dg.Definitions(
        assets=assets,
        jobs=[drift_job],
        schedules=[schedule],
        resources={"drift_monitor": drift_monitor_resource()},
    )
