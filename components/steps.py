"""genline's Kubeflow Pipelines v2 components: read inputs, call genline, record outputs.

No `from __future__ import annotations` here: KFP reads the annotations at decoration time.
Lightweight Python components: KFP ships each function's source to the project image
(`components.image.PROJECT_IMAGE`, which already holds genline and kfp, so nothing is pip-installed
at run time). Imports live inside the bodies for that reason. The undecorated functions stay
reachable as `.python_func` for unit tests with temporary paths.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Model, Output

from components.image import PROJECT_IMAGE

component = dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)


@component
def validate_dataset(
    dataset: Output[Dataset],
    report: Output[Markdown],
    dataset_version: str = "",
    dvc_repo: str = "",
    dataset_uri: str = "",
) -> NamedTuple("DatasetInfo", [("fingerprint", str), ("num_rows", int)]):
    """Restore the training data (a DVC version, a path, or the built-in digits) and gate it with
    the data layer's expectation suite; any failed check fails the step."""
    from genline.data import load_dataset
    from genline.npzfiles import load_npz, save_npz
    from genline.validation import validate_dataset as run_suite
    from genline.versioning import DvcConfig, checkout

    if dataset_version:
        version, _ = checkout(
            DvcConfig.default(repo_dir=dvc_repo or None), dataset_version, dataset.path
        )
        ds, dataset.metadata["dvc_md5"] = load_npz(dataset.path), version.md5
        dataset.metadata["dvc_commit"] = version.commit  # for the lineage record at publish
    else:
        ds = load_dataset(dataset_uri or None)
        save_npz(ds, dataset.path)
    result = run_suite(ds)
    with open(report.path, "w") as fh:
        fh.write(f"# Dataset validation\n\n{result.summary()}\n")
    dataset.metadata.update({**ds.info(), "validation_passed": result.success})
    if not result.success:
        raise ValueError(f"training data failed validation: {result.summary()}")
    return (ds.fingerprint, len(ds))


@component
def train_generator(
    dataset: Input[Dataset],
    model: Output[Model],
    loss_curve: Output[HTML],
    preset: str = "ci",
    world_size: int = 1,
    init_from: str = "",
    model_repository: str = "triton_repo",
    iterations: int = 0,
):
    """Train the generator data-parallel over `world_size` processes (gloo on CPU, nccl on GPU),
    from scratch or warm-started from a published version (`init_from`: "serving" or a number),
    for the preset's iterations or `iterations` when it is above 0."""
    from components.support import png_html
    from genline.distributed import DistributedConfig, train_distributed
    from genline.npzfiles import load_npz
    from genline.retrain import warm_start_dir
    from genline.train import preset as preset_config

    base = warm_start_dir(model_repository, init_from)
    result = train_distributed(
        load_npz(dataset.path),
        preset,
        model.path,
        DistributedConfig(world_size=world_size),
        init_from=base,
        train_cfg=preset_config(preset, **({"iterations": iterations} if iterations > 0 else {})),
    )
    model.metadata.update(
        {
            "init_from": init_from,
            "init_from_dir": base or "",
            "preset": preset,
            "world_size": result.world_size,
            "iterations": result.iterations,
            "seconds": round(result.seconds, 2),
            "stopped_because": result.stopped_because,
        }
    )
    with open(loss_curve.path, "w") as fh:
        fh.write(png_html(f"{model.path}/loss.png", "training loss"))


@component
def evaluate_generator(
    dataset: Input[Dataset],
    model: Input[Model],
    scored_model: Output[Model],
    metrics: Output[Metrics],
    champion_version: str = "",
    model_repository: str = "triton_repo",
    dagster_run_id: str = "",
    trigger: str = '{"kind": "manual"}',
) -> bool:
    """Score the generator (FD ratio, conditional accuracy, diversity) and apply the quality gate,
    against the champion when one is named: the champion is re-scored on this data by the same
    evaluator, and only a challenger that beats it passes; one that loses raises a
    retrain.challenger_lost alert. Returns the verdict; the reasons are in gate.json and the
    scored model's metadata. (One plain output: kfp.local 2.17 cannot resolve a NamedTuple
    field inside a dsl.If condition, and the pipeline must run the same there and on a cluster.)"""
    import shutil

    from genline import contract
    from genline.evaluate import evaluate_model_dir
    from genline.npzfiles import load_npz
    from genline.retrain import alert_challenger_lost, challenger_outcome, parse_trigger
    from genline.serving.registry import Registry

    reason = parse_trigger(trigger)
    champion = Registry().champion_dir(model_repository, contract.MODEL_NAME, champion_version)
    shutil.copytree(model.path, scored_model.path)
    values, gate = evaluate_model_dir(scored_model.path, load_npz(dataset.path), champion)
    outcome = challenger_outcome(gate, champion_version, champion)
    alert_challenger_lost(
        outcome, champion_version=champion_version, dagster_run_id=dagster_run_id, trigger=reason
    )
    for key, value in values.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            metrics.log_metric(key, float(value))
    scored_model.metadata.update(
        {
            "gate_passed": gate.passed,
            "gate_reasons": gate.reasons,
            "champion_dir": champion or "",
            "challenger": outcome["outcome"],
            "challenger_summary": outcome["summary"],
            "champion_losses": outcome["losses"],
        }
    )
    return gate.passed


@component
def distill_generator(
    dataset: Input[Dataset],
    model: Input[Model],
    distilled_model: Output[Model],
    preset: str = "ci",
    distill: bool = True,
):
    """Distil the gated teacher into a 2-step student (genline.distill) and score it with the
    same evaluator and gate. A teacher that failed its gate, or `distill=False`, passes through
    unchanged (distill.json says why); export decides whether the student serves."""
    import shutil

    from genline import contract
    from genline.distill import distill_config, distill_model_dir
    from genline.fsutil import atomic_write_json
    from genline.npzfiles import load_npz

    shutil.copytree(model.path, distilled_model.path)
    if not distill:
        atomic_write_json(f"{distilled_model.path}/{contract.DISTILL_REPORT}",
                          {"skipped": "distillation not requested (distill=False)"})
        distilled_model.metadata.update({"distilled": False, "skipped": "not requested"})
        return
    report = distill_model_dir(distilled_model.path, load_npz(dataset.path),
                               distill_config(preset))
    meta = {"distilled": not report.get("skipped"), "skipped": report.get("skipped") or ""}
    if not report.get("skipped"):
        for who in ("teacher", "student"):
            for key, value in (report.get(f"metrics_{who}") or {}).items():
                meta[f"{who}_{key}"] = value
        meta.update({
            "student_gate_passed": report["student_gate"]["passed"],
            "adoptable": report["adoptable"],
            "reasons": report["reasons"],
            "distill_seconds": round(report["pool_seconds"] + report["train_seconds"], 2),
            "teacher_evaluations": report["teacher_evaluations"],
            "student_evaluations": report["student_evaluations"],
        })
    distilled_model.metadata.update(meta)


@component
def export_onnx(
    dataset: Input[Dataset],
    model: Input[Model],
    onnx_model: Output[Model],
    samples: Output[HTML],
    try_int8: bool = True,
):
    """Export to ONNX with torch parity checked, decide on INT8 by measurement, draw the samples."""
    import shutil

    from components.support import png_html
    from genline import contract
    from genline.export import ExportConfig, export_model_dir
    from genline.npzfiles import load_npz

    shutil.copytree(model.path, onnx_model.path)
    report = export_model_dir(
        onnx_model.path, load_npz(dataset.path), ExportConfig(try_int8=try_int8)
    )
    onnx_model.metadata.update(
        {
            **report["parity"],
            "int8_adopted": report["serving_variant"] in (contract.ONNX_INT8,
                                                          contract.ONNX_STUDENT_INT8),
            "serving_variant": report["serving_variant"],
            # the bytes publish serves as model.onnx: the adopted variant's
            "onnx_sha256": report["files"][report["serving_variant"]],
        }
    )
    student = report.get("student")
    if student is not None:
        onnx_model.metadata.update({
            "student_adopted": student["adopted"],
            "student_reasons": student.get("reasons", []),
            **{k: v for k, v in student.items()
               if k.endswith("_ms_per_image") or k.startswith("speedup_")},
        })
    with open(samples.path, "w") as fh:
        fh.write(png_html(f"{onnx_model.path}/samples.png", "samples: one row per label"))


@component
def build_tensorrt(onnx_model: Input[Model], engine: Output[Model], target: str = "cpu"):
    """Build a TensorRT engine for the GPU target; on CPU record why none was built."""
    from genline.tensorrt_engine import build_engine

    report = build_engine(f"{onnx_model.path}/model.onnx", engine.path, target)
    engine.metadata.update({k: v for k, v in report.items() if not isinstance(v, dict | list)})


@component
def publish_model(
    onnx_model: Input[Model],
    dataset: Input[Dataset] = None,
    model_repository: str = "triton_repo",
    triton_url: str = "127.0.0.1:8001",
    dagster_run_id: str = "",
    trigger: str = '{"kind": "manual"}',
    dvc_repo: str = "",
    kfp_run_id: str = "",
    kfp_run_name: str = "",
) -> NamedTuple("Published", [("version", int), ("previous", int)]):
    """Publish the gated model into Triton: sha256-checked staging, atomic rename, load, canary;
    then record its lineage (the Dagster run and the trigger: manual, or the drift window)."""
    from pathlib import Path

    from genline.retrain import parse_trigger, record_lineage
    from genline.serving.publish import Target, publish

    reason = parse_trigger(trigger)  # a malformed trigger fails before anything is published
    data = dataset.metadata if dataset is not None else {}  # the version validate restored
    result = publish(
        onnx_model.path,
        Target(repository=Path(model_repository), url=triton_url),
        training_data=dataset.path if dataset is not None else None,  # for the staleness baseline
    )
    record_lineage(
        model_dir=onnx_model.path,
        model_repository=model_repository,
        version=result.version,
        previous=result.previous,
        dagster_run_id=dagster_run_id,
        trigger=reason,
        dataset_md5=data.get("dvc_md5", ""),
        dataset_commit=data.get("dvc_commit", ""),
        dvc_repo=dvc_repo,
        kfp_run_id=kfp_run_id,
        kfp_run_name=kfp_run_name,
    )
    return (result.version, result.previous or 0)


@component
def alert_on_failure(status: dsl.PipelineTaskFinalStatus, pipeline_name: str = "genline-training"):
    """The exit handler: raise an alert through genline's alert hook when any step failed."""
    from genline.alerts import send_alert

    if status.state != "SUCCEEDED":
        send_alert(
            "kfp.pipeline",
            f"{pipeline_name} {status.state.lower()}: {status.error_message or 'a step failed'}",
            severity="critical",
            details={
                "state": status.state,
                "job": status.pipeline_job_resource_name,
                "task": status.pipeline_task_name,
                "error_code": status.error_code,
            },
        )
