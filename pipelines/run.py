"""Run the training pipeline: locally with kfp.local, or on a Kubeflow Pipelines cluster.

`run_pipeline` is what the CLI (`genline pipeline run`) and the Dagster asset `generator_model`
call. Without a host (argument or $KFP_HOST) the pipeline runs here, each step a subprocess of
the current Python environment (`kfp.local.SubprocessRunner(use_venv=False)`), with its outputs
under `<state>/kfp/<run id>/`. With a host, `kfp.Client` uploads the committed IR YAML and starts
a run; the run id, its URL and the state the server reports are returned (nothing is assumed
about a run it has not seen finish).
"""

from __future__ import annotations

import inspect
import json
import os
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genline.paths import state_dir
from pipelines.training_pipeline import PIPELINE_NAME, PIPELINES, compiled_path

KFP_HOST_ENV = "KFP_HOST"
KFP_TOKEN_ENV = "KFP_TOKEN"  # optional bearer token for clusters behind auth
DEFAULT_EXPERIMENT = "genline"


class PipelineError(RuntimeError):
    """The pipeline could not be run or submitted; the message says which step and why."""


def parameter_defaults(target: str = "cpu") -> dict[str, Any]:
    """The pipeline's parameters and their defaults (defined once, in the pipeline)."""
    sig = inspect.signature(PIPELINES[target].pipeline_func)
    return {name: p.default for name, p in sig.parameters.items()}


def check_parameters(params: dict[str, Any], target: str = "cpu") -> dict[str, Any]:
    """Reject unknown names and wrong types before anything runs; return the full set."""
    defaults = parameter_defaults(target)
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise PipelineError(f"unknown pipeline parameter(s) {unknown}; known: {sorted(defaults)}")
    merged = {**defaults, **params}
    for name, value in params.items():
        want = type(defaults[name])
        if want is int and isinstance(value, bool) or not isinstance(value, want):
            raise PipelineError(f"pipeline parameter {name}={value!r} must be {want.__name__}")
    if merged["world_size"] < 1:
        raise PipelineError(f"world_size must be >= 1, got {merged['world_size']}")
    if merged["target"] not in PIPELINES:
        raise PipelineError(f"target must be one of {sorted(PIPELINES)}, got {merged['target']!r}")
    return merged


@dataclass
class PipelineRun:
    """What a run produced, as far as this process can know it.

    Attributes:
        mode: "local" or "cluster".
        run_id: the local run's id, or the id the KFP server assigned.
        state: SUCCEEDED / FAILED locally; on a cluster the server's own state string.
        url: the run's page in the KFP UI (cluster only).
        run_dir: where a local run's task outputs are.
        tasks: per task: {"parameters": {...}, "artifacts": {name: {"uri", "metadata"}}}
            (local runs; a task that did not run is absent).
        parameters: the parameters the run was started with.
    """

    mode: str
    run_id: str
    state: str
    url: str | None = None
    run_dir: Path | None = None
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def artifact(self, task: str, name: str) -> dict[str, Any] | None:
        return self.tasks.get(task, {}).get("artifacts", {}).get(name)

    @property
    def gate_passed(self) -> bool | None:
        return self.tasks.get("evaluate-generator", {}).get("parameters", {}).get("Output")

    @property
    def gate_reasons(self) -> str | None:
        art = self.artifact("evaluate-generator", "scored_model")
        return "; ".join(art["metadata"].get("gate_reasons", [])) if art else None

    @property
    def metrics(self) -> dict[str, float]:
        art = self.artifact("evaluate-generator", "metrics")
        return dict(art["metadata"]) if art else {}

    @property
    def model_dir(self) -> Path | None:
        """The exported model directory (checkpoint, metrics, gate, ONNX, samples)."""
        art = self.artifact("export-onnx", "onnx_model")
        return Path(art["uri"]) if art else None

    @property
    def samples_png(self) -> Path | None:
        d = self.model_dir
        return d / "samples.png" if d and (d / "samples.png").is_file() else None

    @property
    def published_version(self) -> int | None:
        return self.tasks.get("publish-model", {}).get("parameters", {}).get("version")

    def summary(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "run_id": self.run_id,
            "state": self.state,
            "url": self.url,
            "run_dir": str(self.run_dir) if self.run_dir else None,
            "gate_passed": self.gate_passed,
            "gate_reasons": self.gate_reasons,
            "metrics": self.metrics,
            "model_dir": str(self.model_dir or "") or None,
            "published_version": self.published_version,
            "seconds": round(self.seconds, 2),
        }


def _collect_tasks(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Parameters and artifacts of every task that wrote its executor output."""
    tasks: dict[str, dict[str, Any]] = {}
    for out in sorted(run_dir.glob("*/executor_output.json")):
        data = json.loads(out.read_text())
        artifacts = {
            name: {
                "uri": a["artifacts"][0]["uri"],
                "metadata": a["artifacts"][0].get("metadata", {}),
            }
            for name, a in data.get("artifacts", {}).items()
            if a.get("artifacts")
        }
        tasks[out.parent.name] = {
            "parameters": data.get("parameterValues", {}),
            "artifacts": artifacts,
        }
    return tasks


def run_local(
    params: dict[str, Any] | None = None, target: str = "cpu", root: str | Path | None = None
) -> PipelineRun:
    """Run the pipeline here, each step a subprocess of the current environment.

    Args:
        params: pipeline parameters (see parameter_defaults); unknown names are refused.
        target: "cpu" or "gpu" (which variant of the graph).
        root: where runs go; default `<state>/kfp`. Each run gets `<root>/<run id>/`.

    Returns:
        The run; `state` is FAILED when any step failed (the exit handler has then alerted).
    """
    import kfp.local

    merged = check_parameters(dict(params or {}), target)
    run_id = f"local-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    pipeline_root = Path(root) if root is not None else state_dir() / "kfp"
    run_root = (pipeline_root / run_id).resolve()
    run_root.mkdir(parents=True, exist_ok=False)
    kfp.local.init(
        runner=kfp.local.SubprocessRunner(use_venv=False),
        pipeline_root=str(run_root),
        raise_on_error=False,
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # kfp.local warns that the project image's name does not say "python"; it is ignored
        # by the subprocess runner, which uses this interpreter.
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        PIPELINES[target](**merged)
    seconds = time.perf_counter() - t0
    dirs = [d for d in run_root.iterdir() if d.is_dir() and d.name.startswith(PIPELINE_NAME)]
    if len(dirs) != 1:
        raise PipelineError(f"{run_root}: expected one pipeline run directory, found {dirs}")
    tasks = _collect_tasks(dirs[0])
    body = (
        "validate-dataset",
        "train-generator",
        "evaluate-generator",
        "export-onnx",
        "build-tensorrt",
    )
    ok = all(t in tasks for t in body)
    gate = tasks.get("evaluate-generator", {}).get("parameters", {}).get("Output")
    if merged["publish"] and gate:
        ok = ok and "publish-model" in tasks
    return PipelineRun(
        "local", run_id, "SUCCEEDED" if ok else "FAILED", None, dirs[0], tasks, merged, seconds
    )


def submit_to_cluster(
    params: dict[str, Any] | None = None,
    host: str | None = None,
    target: str = "cpu",
    experiment: str = DEFAULT_EXPERIMENT,
    wait_s: float | None = None,
    client: Any = None,
) -> PipelineRun:
    """Upload the committed IR YAML to a Kubeflow Pipelines cluster and start a run.

    Args:
        params: pipeline parameters; unknown names are refused before anything is sent.
        host: the KFP API endpoint; default $KFP_HOST.
        target: which compiled variant to run ("cpu" or "gpu").
        experiment: the experiment the run is filed under (created when missing).
        wait_s: wait this long for the run to finish and report its final state.
        client: a kfp.Client (default: one for `host`, with $KFP_TOKEN when set).

    Returns:
        The run: its id, URL and the state the server reported.
    """
    merged = check_parameters(dict(params or {}), target)
    host = host or os.environ.get(KFP_HOST_ENV)
    package = compiled_path(target)
    if not package.is_file():
        raise PipelineError(f"{package} is missing: run `genline pipeline compile`")
    if client is None:
        if not host:
            raise PipelineError(f"no Kubeflow Pipelines host: pass one or set ${KFP_HOST_ENV}")
        import kfp

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            client = kfp.Client(host=host, existing_token=os.environ.get(KFP_TOKEN_ENV) or None)
    t0 = time.perf_counter()
    run_name = f"{PIPELINE_NAME} {time.strftime('%Y-%m-%d %H:%M:%S')}"
    try:
        result = client.create_run_from_pipeline_package(
            str(package),
            arguments=merged,
            run_name=run_name,
            experiment_name=experiment,
            enable_caching=False,
        )
        run_id = result.run_id
        state = getattr(result.run_info, "state", None) or "SUBMITTED"
        if wait_s:
            state = client.wait_for_run_completion(run_id, timeout=wait_s).state
    except Exception as exc:
        raise PipelineError(
            f"submitting {package.name} to {host}: {type(exc).__name__}: {exc}"
        ) from exc
    url = f"{client._get_url_prefix()}/#/runs/details/{run_id}"  # what kfp.Client prints
    return PipelineRun(
        "cluster", run_id, str(state), url, None, {}, merged, time.perf_counter() - t0
    )


def run_pipeline(
    params: dict[str, Any] | None = None,
    target: str = "cpu",
    host: str | None = None,
    **kwargs: Any,
) -> PipelineRun:
    """On the cluster at `host` or $KFP_HOST when set, otherwise locally."""
    host = host or os.environ.get(KFP_HOST_ENV)
    if host:
        return submit_to_cluster(params, host, target, **kwargs)
    return run_local(params, target, **kwargs)
