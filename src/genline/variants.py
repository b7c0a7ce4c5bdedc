"""The serving variants of an exported generator, each adopted only when it pays off: the
distilled few-step student (genline.distill; its gate passed and no gated metric more than 5%
worse than the teacher's) and INT8 (dynamic quantization of the graph that would serve, teacher
or student: >= 1.3x faster, every gated metric within 5% of its FP32 graph's, the quality gate
passed by the INT8 graph itself, and for the student still within 5% of the teacher). The
decisions and their reasons go into export.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from genline import contract
from genline.export import (
    ExportConfig,
    export_generator,
    onnx_sample_fn,
    ort_session,
    time_session,
)
from genline.fsutil import sha256_file

INT8_MIN_SPEEDUP = 1.3
INT8_MAX_METRIC_CHANGE = 0.05


# --- INT8 ----------------------------------------------------------------------------------------


def quantize_int8(fp32_path: Path, int8_path: Path) -> None:
    """Dynamic INT8 quantization: MatMul/Gemm weights stored as int8 per output channel, their
    activations quantized at run time with each batch's own range (so no calibration set).

    Measured on the digits generators (docs/benchmarks.md): 2.4-3.9x faster per image at batch
    1 and ~3x at batch 64 in ONNX Runtime, where static QDQ quantization was slower than FP32
    (its quantize/dequantize pairs around small MatMuls are not fused into integer kernels).
    LayerNorm, the FiLM products and the sampler's elementwise arithmetic stay FP32.
    """
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = int8_path.with_name(f".{int8_path.name}.tmp")
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # the quantizer warns through the root logger
    try:
        quantize_dynamic(str(fp32_path), str(tmp), weight_type=QuantType.QInt8,
                         per_channel=True, op_types_to_quantize=["MatMul", "Gemm"])
        tmp.replace(int8_path)
    finally:
        logging.disable(previous)
        tmp.unlink(missing_ok=True)


def decide_int8(fp32: dict[str, float], int8: dict[str, float], speedup: float,
                gated: tuple[str, ...]) -> tuple[bool, list[str]]:
    """Adopt INT8 only if >= INT8_MIN_SPEEDUP faster and every gated metric within 5%."""
    reasons = []
    if not speedup >= INT8_MIN_SPEEDUP:
        reasons.append(f"INT8 is {speedup:.2f}x the FP32 speed at batch 64, below the "
                       f"{INT8_MIN_SPEEDUP}x needed")
    for key in gated:
        a, b = fp32.get(key), int8.get(key)
        if a is None or b is None or not np.isfinite(b):
            reasons.append(f"{key}: missing for INT8")
            continue
        change = abs(b - a) / abs(a) if a else abs(b - a)
        if change > INT8_MAX_METRIC_CHANGE:
            reasons.append(f"{key} moves {change:.1%} under INT8 ({a:.4f} -> {b:.4f}), more than "
                           f"{INT8_MAX_METRIC_CHANGE:.0%}")
    return not reasons, reasons


def _gate_inputs(model_dir: Path):
    """(GateConfig, champion metrics or None) as this directory's gate was applied."""
    from genline.fsutil import read_json
    from genline.gate import GateConfig

    gate_path, metrics_path = model_dir / contract.GATE, model_dir / contract.METRICS
    gate = read_json(gate_path) if gate_path.is_file() else {}
    cfg = GateConfig.from_record(gate)
    champion = read_json(metrics_path).get("champion") if metrics_path.is_file() else None
    return cfg, champion


def measure_int8(model_dir: Path, fp32_path: Path, g, dataset, cfg: ExportConfig,
                 int8_name: str = contract.ONNX_INT8, teacher_metrics: dict | None = None,
                 tolerance: float = 0.05) -> dict[str, Any]:
    """Quantize `fp32_path` into `model_dir/int8_name`, score both graphs with the same
    evaluator, seed and gated metrics, time both, decide. The INT8 file stays only when
    adopted.

    Adopted only when the INT8 rule holds (decide_int8) and the INT8 graph itself passes the
    directory's quality gate (its floors and, for a challenger, the champion comparison); for a
    student's graph (`teacher_metrics` given) also the student rule against the teacher
    (genline.distill.adoption with `tolerance`), so the tolerances do not add up.
    """
    from genline.data import split
    from genline.evaluate import EvalConfig, compute_metrics
    from genline.evaluator_net import load_evaluator
    from genline.gate import GATED_METRICS, check_gate

    eval_ckpt = model_dir / contract.EVALUATOR_CHECKPOINT
    if dataset is None or not eval_ckpt.exists():
        return {"adopted": False,
                "reasons": ["not measured: no dataset or evaluator to score INT8 against"]}
    evaluator, _ = load_evaluator(eval_ckpt)
    int8_path = model_dir / int8_name
    try:
        quantize_int8(fp32_path, int8_path)
        fp32_sess, int8_sess = ort_session(fp32_path), ort_session(int8_path)
        t = {f"{name}_batch{b}_ms": 1e3 * time_session(s, g.num_classes, g.latent_dim, b)
             for name, s in (("fp32", fp32_sess), ("int8", int8_sess)) for b in (1, 64)}
        speedup = t["fp32_batch64_ms"] / t["int8_batch64_ms"]
        splits = split(dataset)
        m_fp32 = compute_metrics(onnx_sample_fn(fp32_sess), splits, evaluator, g.latent_dim,
                                 EvalConfig())
        m_int8 = compute_metrics(onnx_sample_fn(int8_sess), splits, evaluator, g.latent_dim,
                                 EvalConfig())
        adopted, reasons = decide_int8(m_fp32, m_int8, speedup, GATED_METRICS)
        gate_cfg, champion = _gate_inputs(model_dir)
        gate = check_gate(m_int8, champion, gate_cfg)
        reasons += [f"the INT8 graph fails the quality gate: {r}" for r in gate.reasons]
        if teacher_metrics is not None:
            from genline.distill import adoption

            _, worse = adoption(teacher_metrics, m_int8, True, tolerance)
            reasons += [f"INT8 student against the teacher: {r}" for r in worse]
        adopted = not reasons
        if not adopted:
            int8_path.unlink(missing_ok=True)  # not adopted: not shipped
        return {"adopted": adopted, "reasons": reasons, "speedup_batch64": speedup,
                "gate_int8": gate.to_json(),
                "speedup_batch1": t["fp32_batch1_ms"] / t["int8_batch1_ms"], **t,
                # the gated metrics decide; nn_distance_ratio (a gate floor) is reported
                "metrics_fp32": {k: m_fp32[k] for k in (*GATED_METRICS, "nn_distance_ratio")},
                "metrics_int8": {k: m_int8[k] for k in (*GATED_METRICS, "nn_distance_ratio")}}
    except Exception as exc:  # quantization is optional; record why it is not used
        int8_path.unlink(missing_ok=True)
        return {"adopted": False, "reasons": [f"INT8 quantization failed: {exc}"]}


# --- the distilled student -----------------------------------------------------------------------


def export_student(model_dir: Path, teacher_onnx: Path, g, cfg: ExportConfig,
                   batches: tuple[int, ...] = (1, 256), dataset=None) -> dict[str, Any] | None:
    """Export the distilled student (genline.distill) beside the teacher, time both in process
    and decide whether it serves: its gate passed, no gated metric more than 5% worse than the
    teacher's (distill.json), and its graph matches the teacher's inputs and outputs. An
    adopted student's graph then gets the INT8 trial (`measure_int8`, with `dataset` and
    `cfg.try_int8`), recorded under "int8".

    Returns:
        None when the directory holds no distillation; otherwise the decision with both sets of
        metrics, both speeds and the reasons (recorded in export.json under "student").
    """
    from genline.fsutil import read_json
    from genline.model import load_generator

    report_path = model_dir / contract.DISTILL_REPORT
    if not report_path.is_file():
        return None
    distilled = read_json(report_path)
    if distilled.get("skipped"):
        return {"adopted": False, "exported": False, "reasons": [distilled["skipped"]]}
    student_path = model_dir / contract.STUDENT_CHECKPOINT
    out: dict[str, Any] = {
        "adopted": False, "exported": False,
        "metrics_teacher": distilled.get("metrics_teacher"),
        "metrics_student": distilled.get("metrics_student"),
        "student_gate_passed": bool(distilled.get("student_gate", {}).get("passed")),
        "teacher_evaluations": g.evaluations,
    }
    if not student_path.is_file() or sha256_file(student_path) != distilled.get("student_sha256"):
        out["reasons"] = [f"{contract.STUDENT_CHECKPOINT} is missing or is not the one "
                          f"{contract.DISTILL_REPORT} records"]
        return out
    ckpt_sha = sha256_file(model_dir / contract.CHECKPOINT)
    if distilled.get(contract.CHECKPOINT_SHA256_KEY) != ckpt_sha:
        out["reasons"] = [f"{contract.DISTILL_REPORT} was distilled from another checkpoint"]
        return out
    student, _ = load_generator(student_path)
    s = student.cfg
    if (s.latent_dim, s.image_shape, s.num_classes) != (g.latent_dim, g.image_shape,
                                                        g.num_classes):
        out["reasons"] = ["the student's inputs or outputs differ from the teacher's"]
        return out
    student_onnx = model_dir / contract.ONNX_STUDENT
    # the student's few fixed times make its conditioning a table lookup (Generator.folded);
    # parity is checked against the student itself
    out["parity"] = export_generator(student.folded(), student_onnx, cfg, reference=student)
    out["conditioning"] = "folded into per-label tables"
    out["exported"] = True
    out["student_evaluations"] = s.evaluations
    sessions = {"teacher": ort_session(teacher_onnx), "student": ort_session(student_onnx)}
    for b in batches:  # one ORT thread, per image
        for name, sess in sessions.items():
            out[f"{name}_batch{b}_ms_per_image"] = (
                1e3 * time_session(sess, g.num_classes, g.latent_dim, b, repeats=10) / b)
        out[f"speedup_batch{b}"] = (out[f"teacher_batch{b}_ms_per_image"]
                                    / out[f"student_batch{b}_ms_per_image"])
    reasons = list(distilled.get("reasons") or [])
    if not distilled.get("adoptable") and not reasons:
        reasons = ["distill.json does not mark the student adoptable"]
    out["adopted"] = not reasons
    out["reasons"] = reasons
    if out["adopted"]:
        out["int8"] = (measure_int8(model_dir, student_onnx, s, dataset, cfg,
                                    contract.ONNX_STUDENT_INT8,
                                    teacher_metrics=distilled.get("metrics_teacher") or {},
                                    tolerance=float((distilled.get("config") or {}).get(
                                        "adoption_tolerance", 0.05)))
                       if cfg.try_int8 else {"adopted": False, "reasons": ["INT8 not tried"]})
    return out
