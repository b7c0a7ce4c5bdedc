"""The committed IR YAML is exactly what the code compiles to, and has the promised shape."""

from __future__ import annotations

import inspect

import pytest
import yaml

from components.image import PROJECT_IMAGE, PROJECT_IMAGE_GPU
from pipelines.training_pipeline import PIPELINES, TARGETS, compile_pipeline, compiled_path


@pytest.mark.parametrize("target", TARGETS)
def test_recompiling_reproduces_the_committed_yaml(target, tmp_path):
    fresh = compile_pipeline(target, tmp_path / "p.yaml").read_text()
    committed = compiled_path(target)
    assert committed.is_file(), f"{committed} is not committed: run `genline pipeline compile`"
    assert fresh == committed.read_text(), (
        f"{committed} is stale: run `genline pipeline compile` and commit the result"
    )


def spec(target: str) -> dict:
    return yaml.safe_load(compiled_path(target).read_text())


def executors(target: str) -> dict[str, dict]:
    return spec(target)["deploymentSpec"]["executors"]


def all_tasks(s: dict) -> dict[str, dict]:
    tasks = dict(s["root"]["dag"]["tasks"])
    for comp in s["components"].values():
        tasks.update(comp.get("dag", {}).get("tasks", {}))
    return tasks


@pytest.mark.parametrize("target", TARGETS)
def test_every_step_runs_the_project_image_without_pip_installs(target):
    images = {name: e["container"]["image"] for name, e in executors(target).items()}
    assert set(images) == {
        f"exec-{n}"
        for n in (
            "validate-dataset",
            "train-generator",
            "evaluate-generator",
            "distill-generator",
            "export-onnx",
            "build-tensorrt",
            "publish-model",
            "alert-on-failure",
        )
    }
    gpu_steps = ({"exec-train-generator", "exec-distill-generator", "exec-build-tensorrt"}
                 if target == "gpu" else set())
    for name, image in images.items():
        assert image == (PROJECT_IMAGE_GPU if name in gpu_steps else PROJECT_IMAGE), name
    for name, e in executors(target).items():
        command = " ".join(e["container"]["command"])
        assert "pip install" not in command, f"{name} installs packages at run time"
        resources = e["container"].get("resources", {})
        assert bool(resources.get("accelerator")) == (name in gpu_steps), name


@pytest.mark.parametrize("target", TARGETS)
def test_publish_runs_only_when_the_gate_passed_and_failures_alert(target):
    s = spec(target)
    tasks = all_tasks(s)
    conditions = [
        t["triggerPolicy"]["condition"]
        for t in tasks.values()
        if t.get("triggerPolicy", {}).get("condition")
    ]
    assert any("evaluate-generator-Output" in c and "== true" in c for c in conditions)
    assert any("pipelinechannel--publish" in c for c in conditions)
    assert "publish-model" in tasks and "publish-model" not in s["root"]["dag"]["tasks"]
    alert = s["root"]["dag"]["tasks"]["alert-on-failure"]
    assert alert["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert alert["dependentTasks"] == ["exit-handler-1"]


@pytest.mark.parametrize("target", TARGETS)
def test_parameters_are_typed_and_defaulted(target):
    params = spec(target)["root"]["inputDefinitions"]["parameters"]
    sig = inspect.signature(PIPELINES[target].pipeline_func)
    assert set(params) == set(sig.parameters)
    kinds = {str: "STRING", int: "NUMBER_INTEGER", bool: "BOOLEAN"}
    for name, p in sig.parameters.items():
        assert params[name]["parameterType"] == kinds[p.annotation], name
        assert params[name]["isOptional"] and "defaultValue" in params[name], name
    assert params["target"]["defaultValue"] == target
    assert {"dataset_version", "preset", "champion_version", "target"} <= set(params)
