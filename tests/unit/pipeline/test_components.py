"""The components' bodies, called directly (`.python_func`) with real artifacts in temp dirs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from kfp import dsl

from components import steps
from components.support import png_html
from genline.alerts import read_alerts
from genline.data import load_builtin, make_dataset
from genline.npzfiles import save_npz
from genline.serving.registry import Registry
from genline.tensorrt_engine import build_engine


def artifact(cls, path):
    return cls(name=path.name, uri=str(path), metadata={})


def test_validate_dataset_writes_the_data_and_its_report(tmp_path):
    ds, report = artifact(dsl.Dataset, tmp_path / "ds"), artifact(dsl.Markdown, tmp_path / "r.md")
    out = steps.validate_dataset.python_func(dataset=ds, report=report)
    builtin = load_builtin()
    assert out == (builtin.fingerprint, len(builtin))
    assert ds.metadata["fingerprint"] == builtin.fingerprint and ds.metadata["validation_passed"]
    assert "checks passed" in (tmp_path / "r.md").read_text()


def test_validate_dataset_fails_the_step_on_a_failed_check(tmp_path):
    b = load_builtin()
    rows = np.concatenate([np.arange(200)] * 5)  # 80% duplicate rows
    bad = make_dataset(b.images[rows], b.labels[rows], b.classes, "dupes")
    path = save_npz(bad, tmp_path / "dupes.npz")
    ds, report = artifact(dsl.Dataset, tmp_path / "ds"), artifact(dsl.Markdown, tmp_path / "r.md")
    with pytest.raises(ValueError, match="failed validation: .*duplicate"):
        steps.validate_dataset.python_func(dataset=ds, report=report, dataset_uri=str(path))
    assert "duplicate" in (tmp_path / "r.md").read_text()
    assert ds.metadata["validation_passed"] is False


def test_build_tensorrt_on_cpu_records_why_it_was_skipped(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.onnx").write_bytes(b"not parsed when skipping")
    for target, reason in (("cpu", "target is cpu"), ("gpu", "TensorRT engine not built")):
        engine = artifact(dsl.Model, tmp_path / f"engine-{target}")
        steps.build_tensorrt.python_func(
            onnx_model=artifact(dsl.Model, model), engine=engine, target=target
        )
        report = json.loads((tmp_path / f"engine-{target}" / "tensorrt.json").read_text())
        assert report["built"] is False and report["reason"].startswith(reason)
        assert engine.metadata == report
    with pytest.raises(FileNotFoundError, match="no ONNX model"):
        build_engine(tmp_path / "missing.onnx", tmp_path / "e", "gpu")
    with pytest.raises(ValueError, match="target"):
        build_engine(model / "model.onnx", tmp_path / "e", "tpu")


def status(state: str, message: str = "") -> dsl.PipelineTaskFinalStatus:
    return dsl.PipelineTaskFinalStatus(
        state=state,
        pipeline_job_resource_name="job-1",
        pipeline_task_name="exit-handler-1",
        error_code=1 if message else None,
        error_message=message,
    )


def test_exit_handler_alerts_only_on_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLINE_HOME", str(tmp_path))
    steps.alert_on_failure.python_func(status=status("SUCCEEDED"))
    assert read_alerts() == []
    steps.alert_on_failure.python_func(status=status("FAILED", "train-generator: OOM"))
    (alert,) = read_alerts()
    assert alert["source"] == "kfp.pipeline" and alert["severity"] == "critical"
    assert "train-generator: OOM" in alert["summary"]
    assert alert["details"]["job"] == "job-1"


def test_champion_resolution(tmp_path):
    reg_path, repo = tmp_path / "registry.json", tmp_path / "repo"
    model_dir = tmp_path / "published-model"
    model_dir.mkdir()
    reg = Registry(reg_path)

    def resolve_champion(champion_version, repository):
        return reg.champion_dir(repository, "genline_generator", champion_version)

    assert resolve_champion("", str(repo)) is None
    assert resolve_champion("serving", str(repo)) is None  # nothing published yet
    reg.record(
        repo,
        "genline_generator",
        "published",
        1,
        serving=1,
        state="serving",
        lineage={"model_dir": str(model_dir)},
    )
    reg.record(
        repo,
        "genline_generator",
        "published",
        2,
        state="quarantined",
        lineage={"model_dir": str(tmp_path / "gone")},
    )
    assert resolve_champion("serving", str(repo)) == str(model_dir)
    assert resolve_champion("1", str(repo)) == str(model_dir)
    with pytest.raises(ValueError, match="never published"):
        resolve_champion("7", str(repo))
    with pytest.raises(ValueError, match="is gone"):
        resolve_champion("2", str(repo))
    with pytest.raises(ValueError, match="'serving' or a version number"):
        resolve_champion("../3", str(repo))


def test_png_html_embeds_the_image(tmp_path):
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG fake")
    page = png_html(png, "a <title>")
    assert "data:image/png;base64,iVBORyBmYWtl" in page and "a &lt;title&gt;" in page


def test_publish_without_a_server_fails_clearly(tmp_path, monkeypatch):
    from genline.serving.publish import PublishError

    monkeypatch.setenv("GENLINE_HOME", str(tmp_path))
    with pytest.raises(PublishError):
        steps.publish_model.python_func(
            onnx_model=artifact(dsl.Model, tmp_path / "no-model"),
            model_repository=str(tmp_path / "repo"),
            triton_url="127.0.0.1:1",
        )
