"""The genline training pipeline (Kubeflow Pipelines v2): wiring only.

    validate_dataset -> train_generator -> evaluate_generator -> distill_generator -> export_onnx
    -> build_tensorrt
                                                   |
                                       dsl.If(gate passed) -> dsl.If(publish) -> publish_model
    all inside dsl.ExitHandler(alert_on_failure): any failed step raises an alert.

Two compiled variants of the same graph are committed under pipelines/compiled/: `cpu` (the
project image, no accelerator) and `gpu` (the CUDA + TensorRT image, one NVIDIA GPU for training
and the TensorRT build). `python -m pipelines.training_pipeline` (or `genline pipeline compile`)
rewrites them; a test checks that recompiling reproduces the committed files.
"""

import sys
from pathlib import Path

from kfp import compiler, dsl

from components.image import PROJECT_IMAGE_GPU
from components.steps import (
    alert_on_failure,
    build_tensorrt,
    distill_generator,
    evaluate_generator,
    export_onnx,
    publish_model,
    train_generator,
    validate_dataset,
)
from genline.retrain import MANUAL_TRIGGER

PIPELINE_NAME = "genline-training"
COMPILED_DIR = Path(__file__).resolve().parent / "compiled"
TARGETS = ("cpu", "gpu")


def _define(target: str):
    gpu = target == "gpu"

    @dsl.pipeline(
        name=PIPELINE_NAME if not gpu else f"{PIPELINE_NAME}-gpu",
        description="genline: validated data -> data-parallel training -> quality gate -> "
        "ONNX (+TensorRT) -> publish to Triton when the gate passes.",
    )
    def pipeline(
        dataset_version: str = "",
        dvc_repo: str = "",
        dataset_uri: str = "",
        preset: str = "ci",
        iterations: int = 0,
        world_size: int = 1,
        champion_version: str = "",
        target: str = target,
        try_int8: bool = True,
        distill: bool = True,
        publish: bool = False,
        model_repository: str = "triton_repo",
        triton_url: str = "127.0.0.1:8001",
        init_from: str = "",
        dagster_run_id: str = "",
        trigger: str = MANUAL_TRIGGER,
    ):
        """Parameters:

        dataset_version: DVC md5 (or "latest") of training_dataset; empty = use dataset_uri.
        dvc_repo: the git + DVC repository of the versions; empty = genline's default.
        dataset_uri: a .npz or image folder when no version is given; empty = built-in digits.
        preset: training preset (genline.train.PRESETS).
        iterations: optimizer steps; 0 = the preset's.
        world_size: data-parallel training processes.
        champion_version: "" (no champion), "serving", or a published version number: the
            champion is re-scored on this data; only a challenger that beats it passes.
        target: "cpu" or "gpu" (the TensorRT engine is built only for gpu).
        try_int8: measure the INT8 variant and adopt it if it is faster and as good.
        distill: distil a gated teacher into a 2-step student; it serves when it passes the
            gate and no gated metric is more than 5% worse than the teacher's.
        publish: publish to Triton when the gate passes.
        model_repository, triton_url: where publish_model puts the version and loads it.
        init_from: warm start: "" (from scratch), "serving", or a published version number.
        dagster_run_id: the Dagster run that launched this pipeline ("" when none did).
        trigger: why it runs, JSON: {"kind": "manual"} or {"kind": "drift", "window_key",
            "model", "version", "report", "scores"}; recorded in lineage at publish.
        """
        alert = alert_on_failure(pipeline_name=PIPELINE_NAME).set_caching_options(False)
        with dsl.ExitHandler(alert, name="train-gate-publish"):
            data = validate_dataset(
                dataset_version=dataset_version, dvc_repo=dvc_repo, dataset_uri=dataset_uri
            )
            trained = train_generator(
                dataset=data.outputs["dataset"],
                preset=preset,
                iterations=iterations,
                world_size=world_size,
                init_from=init_from,
                model_repository=model_repository,
            )
            scored = evaluate_generator(
                dataset=data.outputs["dataset"],
                model=trained.outputs["model"],
                champion_version=champion_version,
                model_repository=model_repository,
                dagster_run_id=dagster_run_id,
                trigger=trigger,
            )
            distilled = distill_generator(
                dataset=data.outputs["dataset"],
                model=scored.outputs["scored_model"],
                preset=preset,
                distill=distill,
            )
            exported = export_onnx(
                dataset=data.outputs["dataset"],
                model=distilled.outputs["distilled_model"],
                try_int8=try_int8,
            )
            engine = build_tensorrt(onnx_model=exported.outputs["onnx_model"], target=target)
            for task in (data, trained, scored, distilled, exported, engine):
                task.set_caching_options(False)  # a retrained model is the point of a run
            if gpu:
                for task in (trained, distilled, engine):
                    task.set_container_image(PROJECT_IMAGE_GPU)
                    task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
            with dsl.If(scored.outputs["Output"] == True, name="gate-passed"):  # noqa: E712
                with dsl.If(publish == True, name="publish-requested"):  # noqa: E712
                    published = publish_model(
                        onnx_model=exported.outputs["onnx_model"],
                        dataset=data.outputs["dataset"],
                        model_repository=model_repository,
                        triton_url=triton_url,
                        dagster_run_id=dagster_run_id,
                        trigger=trigger,
                        dvc_repo=dvc_repo,
                        # the KFP run, resolved by KFP (and kfp.local) when the step runs
                        kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                        kfp_run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                    ).after(engine)
                    published.set_caching_options(False)

    return pipeline


training_pipeline = _define("cpu")
training_pipeline_gpu = _define("gpu")
PIPELINES = {"cpu": training_pipeline, "gpu": training_pipeline_gpu}


def compiled_path(target: str = "cpu") -> Path:
    """The committed IR YAML of a target."""
    if target not in PIPELINES:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    return COMPILED_DIR / f"training_pipeline_{target}.yaml"


def compile_pipeline(target: str = "cpu", out: str | Path | None = None) -> Path:
    """Compile one variant to IR YAML (deterministic: same code, same bytes)."""
    path = Path(out) if out is not None else compiled_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(PIPELINES[target], package_path=str(path))
    return path


def main() -> int:
    for target in TARGETS:
        print(compile_pipeline(target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
