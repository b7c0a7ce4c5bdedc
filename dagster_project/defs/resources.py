"""External systems as resources: the state directory (drop folder, stores, simulation), the DVC
remote, the alert sink and the Kubeflow Pipelines endpoint. Secrets only through `dg.EnvVar`
(read at run time, hidden in the UI).
"""

import os
from pathlib import Path
from typing import Any

import dagster as dg

from genline.alerting import FlushReport, Router
from genline.alerts import send_alert
from genline.ingest import DEFAULT_SIM_DAYS, BatchStore
from genline.paths import state_dir
from genline.validation import ValidationConfig
from genline.versioning import DvcConfig


class GenlineStateResource(dg.ConfigurableResource):
    """genline's state directory: `incoming/`, `accepted/`, `quarantine/`, `datasets/`."""

    home: str = ""  # empty: $GENLINE_HOME or ./.genline, as everywhere in genline
    simulate_builtin: bool = True  # deliver the built-in digits' daily batches when none arrived
    simulation_start: str = ""  # empty: the simulated days end yesterday by genline.clock
    simulation_days: int = DEFAULT_SIM_DAYS
    min_rows: int = ValidationConfig.min_rows
    max_duplicate_rate: float = ValidationConfig.max_duplicate_rate

    def root(self) -> Path:
        return Path(self.home).expanduser().resolve() if self.home else state_dir()

    def store(self) -> BatchStore:
        return BatchStore(self.root())

    def start(self) -> str | None:
        """The simulation's first day, or None: the window ends yesterday by genline.clock."""
        return self.simulation_start or None

    def validation_config(self) -> ValidationConfig:
        return ValidationConfig(min_rows=self.min_rows, max_duplicate_rate=self.max_duplicate_rate)


class DvcRemoteResource(dg.ConfigurableResource):
    """Where dataset versions go: a git + DVC repository and its remote.

    Defaults: `<state>/data_repo` pushing to the local directory `<state>/dvc_remote`. For an
    S3-compatible remote set `remote_url="s3://bucket/prefix"`, `endpoint_url`, and the
    credentials through EnvVar (see `resources` below).
    """

    repo_dir: str = ""
    remote_url: str = ""
    endpoint_url: str = ""
    access_key_id: str = ""
    secret_access_key: str = ""
    lock_timeout_s: float = 300.0

    def config(self, state_root: Path) -> DvcConfig:
        return DvcConfig.default(
            state_root,
            repo_dir=self.repo_dir or None,
            remote_url=self.remote_url or None,
            endpoint_url=self.endpoint_url,
            lock_timeout_s=self.lock_timeout_s,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
        )


class AlertSinkResource(dg.ConfigurableResource):
    """The alert hook: wraps genline's alert router (routing from $GENLINE_HOME/alerting.toml
    and the environment, read when a run or sensor tick uses it; see docs/alerting.md)."""

    sink_dir: str = ""  # empty: <state>/alerts

    def directory(self) -> Path | None:
        return Path(self.sink_dir) if self.sink_dir else None

    def send(self, source: str, summary: str, **kwargs) -> dict:
        return send_alert(source, summary, sink_dir=self.directory(), **kwargs)

    def flush(self) -> FlushReport:
        """Deliver what is still in the outbox (bounded by the config's send budget)."""
        router = Router(self.directory())
        return router.flush(budget_s=router.config.send_budget_s)


class KubeflowPipelinesResource(dg.ConfigurableResource):
    """Where the training pipeline runs: a Kubeflow Pipelines endpoint, or here (kfp.local)."""

    host: str = ""  # empty: run locally, each step a subprocess of this environment
    token: str = ""  # bearer token for clusters behind auth (only through EnvVar)
    experiment: str = "genline"
    wait_s: float = 7200.0  # on a cluster: how long to wait for the run to finish

    def run(self, params: dict[str, Any], target: str, local_root: Path):
        from pipelines.run import KFP_HOST_ENV, run_local, submit_to_cluster

        host = self.host or os.environ.get(KFP_HOST_ENV, "")  # read at run time
        if not host:
            return run_local(params, target, root=local_root)
        client = None
        if self.token:
            import kfp

            client = kfp.Client(host=host, existing_token=self.token)
        return submit_to_cluster(params, host, target, self.experiment, self.wait_s, client)


def _env_or_default(name: str) -> str | dg.EnvVar:
    # Only names that are set are bound, so an unset optional setting keeps its default instead
    # of failing every run; the value itself is read by Dagster at run time.
    return dg.EnvVar(name) if os.environ.get(name) else ""


@dg.definitions
def resources() -> dg.Definitions:
    """The location's resources. Called when Dagster loads the location, never at import; an
    environment variable is only checked for presence here, its value is read at run time."""
    return dg.Definitions(
        resources={
            "genline_state": GenlineStateResource(),
            "dvc_remote": DvcRemoteResource(
                remote_url=_env_or_default("GENLINE_DVC_REMOTE_URL"),
                endpoint_url=_env_or_default("GENLINE_DVC_ENDPOINT_URL"),
                access_key_id=_env_or_default("GENLINE_DVC_ACCESS_KEY_ID"),
                secret_access_key=_env_or_default("GENLINE_DVC_SECRET_ACCESS_KEY"),
            ),
            "alert_sink": AlertSinkResource(),
            "kubeflow": KubeflowPipelinesResource(),
        },
        executor=dg.in_process_executor,
    )
