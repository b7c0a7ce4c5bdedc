"""Training: the generator, trained by the Kubeflow pipeline on the current training_dataset.

`generator_model` launches `pipelines/training_pipeline.py` for the DVC version at the head of the
data repository: locally through kfp.local by default, on a Kubeflow Pipelines cluster when the
`kubeflow` resource has a host ($KFP_HOST). The run id, metrics, gate verdict, artifact
locations and the sample grid land in the materialization's metadata; the blocking check
`passes_quality_gate` carries the gate's verdict so nothing downstream consumes a failing model.
"""

import base64
from pathlib import Path
from typing import Any

import dagster as dg

from genline.alerting.runs import dagster_subject, run_context
from genline.retrain import parse_trigger
from genline.versioning import current_version

from .resources import DvcRemoteResource, GenlineStateResource, KubeflowPipelinesResource
from .retries import TRANSIENT_RETRY

GATE_CHECK = "passes_quality_gate"
CHALLENGER_TAG = "genline/challenger"  # no_champion | won | lost | failed_gate
HEADLINE_METRICS = ("fd_ratio", "conditional_accuracy", "evaluator_accuracy", "diversity_ratio")


class TrainingPipelineConfig(dg.Config):
    """Run options; anything left empty/None takes the pipeline's own default."""

    preset: str | None = None
    iterations: int | None = None  # optimizer steps; None or 0: the preset's
    world_size: int | None = None
    champion_version: str | None = None
    target: str = "cpu"
    publish: bool | None = None
    model_repository: str | None = None
    triton_url: str | None = None
    try_int8: bool | None = None
    distill: bool | None = None  # distil a gated teacher into a 2-step student (default on)
    init_from: str | None = None  # "" from scratch, "serving", or a published version number
    trigger: str | None = None  # JSON, genline.retrain.parse_trigger; default {"kind": "manual"}
    dagster_run_id: str | None = None  # left None: this Dagster run's id is passed

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


def _student_table(model_dir: Path) -> str | None:
    """Teacher and distilled student side by side (export.json "student"), with the decision."""
    import json

    try:
        student = json.loads((model_dir / "export.json").read_text()).get("student")
    except (OSError, ValueError):
        return None
    if not student:
        return None
    rows = ["| | teacher | student |", "|---|---:|---:|"]
    for key, value in (student.get("metrics_teacher") or {}).items():
        other = (student.get("metrics_student") or {}).get(key)
        rows.append(f"| {key} | {value:.4f} | {other:.4f} |" if other is not None
                    else f"| {key} | {value:.4f} | - |")
    rows.append(f"| network evaluations / image | {student.get('teacher_evaluations')} | "
                f"{student.get('student_evaluations', '-')} |")
    for b in (1, 256):
        if f"speedup_batch{b}" in student:
            rows.append(f"| ms / image at batch {b} (ORT, 1 thread) | "
                        f"{student[f'teacher_batch{b}_ms_per_image']:.3f} | "
                        f"{student[f'student_batch{b}_ms_per_image']:.3f} |")
    decision = "**adopted**: the student serves" if student.get("adopted") else (
        "**not adopted**: the teacher serves")
    reasons = "".join(f"\n- {r}" for r in student.get("reasons") or [])
    int8 = student.get("int8") or {}
    if "speedup_batch1" in int8:
        reasons += (f"\n\nINT8 of the student: {int8['speedup_batch1']:.1f}x at batch 1, "
                    f"{int8['speedup_batch64']:.1f}x at batch 64, "
                    + ("**adopted** (its INT8 graph serves)" if int8.get("adopted") else
                       "not adopted: " + "; ".join(int8.get("reasons") or [])))
    return "\n".join(rows) + f"\n\n{decision}{reasons}"


def _png_markdown(path: Path) -> str:
    return f"![samples](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})"


@dg.asset(
    deps=["training_dataset"],
    group_name="training",
    kinds={"kubeflow", "pytorch", "onnx"},
    # Triton (publish) and a KFP cluster are remote: an OSError from them retries; a failed
    # pipeline run or gate is a Failure(allow_retries=False) below.
    retry_policy=TRANSIENT_RETRY,
    check_specs=[
        dg.AssetCheckSpec(
            GATE_CHECK,
            asset="generator_model",
            blocking=True,
            description="The quality gate passed (FD ratio, conditional accuracy, diversity, and "
            "not worse than the champion when one was named).",
        )
    ],
)
def generator_model(
    context: dg.AssetExecutionContext,
    config: TrainingPipelineConfig,
    kubeflow: KubeflowPipelinesResource,
    genline_state: GenlineStateResource,
    dvc_remote: DvcRemoteResource,
) -> dg.MaterializeResult:
    """The conditional generator, trained and gated by the Kubeflow pipeline."""
    root = genline_state.root()
    dvc = dvc_remote.config(root)
    version = current_version(dvc)
    if version is None:
        raise dg.Failure(
            description=f"no training_dataset version in {dvc.repo_dir} yet: "
            "materialize training_dataset first",
            allow_retries=False,
        )
    params = {
        "dataset_version": version.md5,
        "dvc_repo": str(dvc.repo_dir),
        "dagster_run_id": context.run_id,
        **config.params(),
    }
    if "trigger" in params:
        try:
            parse_trigger(params["trigger"])
        except ValueError as exc:
            raise dg.Failure(description=f"config.trigger: {exc}", allow_retries=False) from None
    context.log.info(f"training pipeline on dataset version {version.md5}: {params}")
    # the pipeline's exit handler keys its alert by this run, as the failure sensor does: one
    # incident per failed run, whether the daemon, the UI or the CLI launched it
    with run_context(dagster_subject(context.run_id)):
        run = kubeflow.run(params, config.target, root / "kfp")
    summary = run.summary()
    metadata: dict[str, Any] = {
        "kfp_run_id": run.run_id,
        "kfp_mode": run.mode,
        "kfp_state": run.state,
        "dataset_version": version.md5,
        "dataset_commit": version.commit,
        "parameters": dg.MetadataValue.json(run.parameters),
    }
    if run.url:
        metadata["kfp_url"] = dg.MetadataValue.url(run.url)
    if run.run_dir:
        metadata["kfp_outputs"] = dg.MetadataValue.path(str(run.run_dir))
    if run.mode == "local" and run.state != "SUCCEEDED":
        raise dg.Failure(
            description=f"pipeline run {run.run_id} failed; see the step logs above "
            f"and {run.run_dir}",
            metadata=metadata,
            allow_retries=False,  # minutes of training; the step logs say what to fix
        )
    if run.mode == "cluster":  # metrics and artifacts live in the cluster's KFP UI and store
        passed = str(run.state).upper() == "SUCCEEDED"
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[
                dg.AssetCheckResult(
                    check_name=GATE_CHECK,
                    passed=passed,
                    metadata={"kfp_state": run.state, "see": run.url or ""},
                )
            ],
        )

    metrics = run.metrics
    for key in HEADLINE_METRICS:
        if key in metrics:
            metadata[key] = float(metrics[key])
    model_dir = run.model_dir
    onnx = run.artifact("export-onnx", "onnx_model")["metadata"]
    scored = (run.artifact("evaluate-generator", "scored_model") or {}).get("metadata", {})
    challenger = scored.get("challenger", "no_champion")
    # the run records the champion/challenger decision; a losing challenger is an outcome
    # (alerted as retrain.challenger_lost by the pipeline), not a failed run
    context.instance.add_run_tags(context.run_id, {CHALLENGER_TAG: challenger})
    metadata.update(
        {
            "gate_passed": bool(run.gate_passed),
            "gate_reasons": run.gate_reasons or "",
            "metrics": dg.MetadataValue.json(metrics),
            "model_dir": dg.MetadataValue.path(str(model_dir)),
            "onnx": dg.MetadataValue.path(str(model_dir / "model.onnx")),
            "onnx_sha256": onnx.get("onnx_sha256", ""),
            "int8_adopted": bool(onnx.get("int8_adopted", False)),
            "tensorrt": dg.MetadataValue.json(run.artifact("build-tensorrt", "engine")["metadata"]),
            "train": dg.MetadataValue.json(run.artifact("train-generator", "model")["metadata"]),
            "published_version": run.published_version if run.published_version else -1,
            "challenger": challenger,
            "challenger_summary": scored.get("challenger_summary", ""),
            "champion_losses": dg.MetadataValue.json(scored.get("champion_losses") or []),
            "seconds": round(run.seconds, 1),
        }
    )
    student = _student_table(model_dir)
    if student is not None:
        metadata["serving_variant"] = onnx.get("serving_variant", "")
        metadata["student_adopted"] = bool(onnx.get("student_adopted", False))
        metadata["teacher_vs_student"] = dg.MetadataValue.md(student)
    if run.samples_png:
        metadata["sample_grid"] = dg.MetadataValue.path(str(run.samples_png))
        metadata["samples"] = dg.MetadataValue.md(_png_markdown(run.samples_png))
    context.log.info(
        f"run {run.run_id}: gate {'passed' if run.gate_passed else 'FAILED'} "
        f"{summary['metrics'].get('fd_ratio')}"
    )
    return dg.MaterializeResult(
        metadata=metadata,
        data_version=dg.DataVersion(onnx.get("onnx_sha256", run.run_id)[:16]),
        check_results=[
            dg.AssetCheckResult(
                check_name=GATE_CHECK,
                passed=bool(run.gate_passed),
                # a good model that did not beat the champion is not published, and the run
                # does not fail (ERROR on a blocking check would fail it)
                severity=dg.AssetCheckSeverity.WARN
                if challenger == "lost"
                else dg.AssetCheckSeverity.ERROR,
                metadata={
                    "reasons": run.gate_reasons or "",
                    **{k: float(metrics[k]) for k in HEADLINE_METRICS if k in metrics},
                },
            )
        ],
    )


training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.assets("generator_model"),
    description="Train, gate and export the generator through the Kubeflow pipeline.",
)


# Host and token: set them here with dg.EnvVar in a deployment; left empty, $KFP_HOST (and
# $KFP_TOKEN) are read when a run starts, and without a host the pipeline runs locally.
