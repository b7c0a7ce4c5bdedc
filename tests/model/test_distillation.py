"""Distillation as a step of the line, on the trained ci model: the student is scored and gated
like the teacher, export adopts it only under the rule (both ways), and publish checks it."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from genline import contract
from genline.distill import DISTILL_PRESETS, DistillConfig, distill_model_dir
from genline.export import ExportConfig, export_model_dir
from genline.fsutil import atomic_write_json, read_json
from genline.gate import GATED_METRICS
from genline.serving.publish_checks import ModelDirError, read_model_dir

pytestmark = pytest.mark.slow


def _copy(ci_model_dir, tmp_path, name):
    out = tmp_path / name
    shutil.copytree(ci_model_dir, out)
    return out


def test_a_poor_student_is_not_adopted_and_the_teacher_serves(ci_model_dir, digits, tmp_path):
    md = _copy(ci_model_dir, tmp_path, "poor")
    report = distill_model_dir(md, digits, DistillConfig(iterations=20, pool=1024))
    assert report["skipped"] is None and not report["adoptable"]
    assert any("worse for the student" in r or "gate" in r for r in report["reasons"])
    export = export_model_dir(md, digits, ExportConfig(try_int8=False))
    student = export["student"]
    assert not student["adopted"] and student["reasons"] == report["reasons"]
    assert export["serving_variant"] == contract.ONNX_FP32
    assert "int8" not in student  # a student that does not serve gets no INT8 trial
    assert student["teacher_evaluations"] == 40 and student["student_evaluations"] == 2
    assert student["parity"]["parity_checked_on"] == "simplified graph"
    assert read_model_dir(md).serving_variant == contract.ONNX_FP32


def test_a_student_within_the_rule_serves_and_publish_checks_it(ci_model_dir, digits, tmp_path):
    md = _copy(ci_model_dir, tmp_path, "good")
    # the ci preset's distillation; the tolerance widened to 25% so the adopted path is
    # exercised whatever the evaluation noise on this machine (the paired fd gap measured
    # 3-5% here and 10.7% once on CI, where a 10% tolerance refused the student)
    cfg = replace(DISTILL_PRESETS["ci"], adoption_tolerance=0.25)
    report = distill_model_dir(md, digits, cfg)
    assert report["adoptable"], report["reasons"]
    assert report["student_gate"]["passed"]
    teacher, student = report["metrics_teacher"], report["metrics_student"]
    assert student["fd_ratio"] <= teacher["fd_ratio"] * 1.25
    export = export_model_dir(md, digits, ExportConfig(try_int8=False))
    assert export["serving_variant"] == contract.ONNX_STUDENT and export["student"]["adopted"]
    assert export["files"][contract.ONNX_STUDENT]
    for b in (1, 256):
        assert export["student"][f"student_batch{b}_ms_per_image"] > 0
    checked = read_model_dir(md)
    assert checked.serving_variant == contract.ONNX_STUDENT
    assert checked.metrics["student"]["fd_ratio"] == student["fd_ratio"]
    # a distill.json from elsewhere (or edited) is refused before anything is published
    edited = read_json(md / contract.DISTILL_REPORT)
    edited["student_sha256"] = "0" * 64
    atomic_write_json(md / contract.DISTILL_REPORT, edited)
    with pytest.raises(ModelDirError, match="student.pt is missing or differs"):
        read_model_dir(md)


def test_the_int8_trial_is_of_the_serving_student_and_publish_checks_it(ci_model_dir, digits,
                                                                         tmp_path, monkeypatch):
    from genline import variants

    md = _copy(ci_model_dir, tmp_path, "int8")
    report = distill_model_dir(md, digits, replace(DISTILL_PRESETS["ci"],
                                                   adoption_tolerance=0.25))
    assert report["adoptable"], report["reasons"]
    # refused on speed: the FP32 student serves, the INT8 file is not kept
    monkeypatch.setattr(variants, "INT8_MIN_SPEEDUP", float("inf"))
    export = export_model_dir(md, digits)
    int8 = export["student"]["int8"]
    assert export["serving_variant"] == contract.ONNX_STUDENT and not int8["adopted"]
    assert any("below the inf" in r for r in int8["reasons"]), int8["reasons"]
    assert not (md / contract.ONNX_STUDENT_INT8).exists()
    assert contract.ONNX_STUDENT_INT8 not in export["files"]
    assert export["int8"]["reasons"] == ["not tried: the distilled student serves"]
    # the speed rule met (whatever this machine measures), the metric rule decides
    monkeypatch.setattr(variants, "INT8_MIN_SPEEDUP", 0.0)
    export = export_model_dir(md, digits)
    int8 = export["student"]["int8"]
    fp32, q = int8["metrics_fp32"], int8["metrics_int8"]
    within = all(abs(q[k] - fp32[k]) <= 0.05 * abs(fp32[k]) for k in GATED_METRICS)
    assert int8["adopted"] == within, int8
    assert within, f"dynamic INT8 moved a gated metric of the ci student by > 5%: {int8}"
    assert export["serving_variant"] == contract.ONNX_STUDENT_INT8
    assert export["files"][contract.ONNX_STUDENT_INT8]
    assert export["served_metrics"] == q
    checked = read_model_dir(md)
    assert checked.serving_variant == contract.ONNX_STUDENT_INT8
    assert checked.metrics["student"] == q  # what the served graph earned
    ops = {n.op_type for n in __import__("onnx").load(md / contract.ONNX_STUDENT_INT8).graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops, ops
    # the INT8 student still answers to the student rule against the teacher: with a teacher
    # recorded as far better, the tolerances cannot add up and the FP32 student serves
    d = read_json(md / contract.DISTILL_REPORT)
    atomic_write_json(md / contract.DISTILL_REPORT, {
        **d, "metrics_teacher": {**d["metrics_teacher"], "fd_ratio": q["fd_ratio"] / 2}})
    export = export_model_dir(md, digits)
    int8 = export["student"]["int8"]
    assert not int8["adopted"] and export["serving_variant"] == contract.ONNX_STUDENT
    assert any(r.startswith("INT8 student against the teacher: fd_ratio") for r in int8["reasons"])
    assert int8["gate_int8"]["passed"]  # its own gate passed: the teacher rule refused it
    atomic_write_json(md / contract.DISTILL_REPORT, d)
    monkeypatch.setattr(variants, "INT8_MIN_SPEEDUP", 0.0)
    export_model_dir(md, digits)
    assert read_model_dir(md).serving_variant == contract.ONNX_STUDENT_INT8
    # an export.json claiming an INT8 student it never adopted is refused
    forged = read_json(md / contract.EXPORT_REPORT)
    forged["student"]["int8"]["adopted"] = False
    atomic_write_json(md / contract.EXPORT_REPORT, forged)
    with pytest.raises(ModelDirError, match="INT8 graph without having adopted it"):
        read_model_dir(md)


def test_a_teacher_that_failed_its_gate_is_not_distilled(ci_model_dir, digits, tmp_path):
    md = _copy(ci_model_dir, tmp_path, "failed")
    gate = read_json(md / contract.GATE)
    atomic_write_json(md / contract.GATE, {**gate, "passed": False})
    report = distill_model_dir(md, digits)
    assert "did not pass its quality gate" in report["skipped"]
    assert not (md / contract.STUDENT_CHECKPOINT).exists()
