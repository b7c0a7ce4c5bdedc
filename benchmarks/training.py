"""Foundation benchmark: training throughput, ONNX Runtime vs torch eager, INT8 vs FP32.

All figures come from one run, side by side, and are reported as ratios too (this machine is
noisy). Writes docs/benchmarks/training.md.

    .venv/bin/python benchmarks/training.py [--quick]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from genline import contract
from genline.data import load_builtin, split
from genline.evaluate import (
    GATED_METRICS,
    EvalConfig,
    compute_metrics,
    get_evaluator,
    torch_sample_fn,
)
from genline.export import (
    export_generator,
    onnx_sample_fn,
    ort_session,
    time_session,
)
from genline.model import Generator
from genline.train import PRESETS, preset, train
from genline.variants import INT8_MAX_METRIC_CHANGE, INT8_MIN_SPEEDUP, quantize_int8

OUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks" / "training.md"


def torch_time(model: Generator, batch: int, repeats: int) -> float:
    k, d = model.cfg.num_classes, model.cfg.latent_dim
    label = torch.arange(batch) % k
    z = torch.randn(batch, d)
    with torch.inference_mode():
        for _ in range(3):
            model(label, z)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(label, z)
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    ap.add_argument("--default-iterations", type=int, default=None,
                    help="cap the default preset's iterations (the table says how many ran)")
    args = ap.parse_args()
    torch.set_num_threads(1)  # one intra-op thread for both runtimes: a like-for-like comparison
    ds = load_builtin()
    splits = split(ds)
    evaluator, _ = get_evaluator(ds, splits)
    lines = ["## Foundation: training, ONNX Runtime vs torch, INT8 vs FP32", "",
             f"Machine: {platform.machine()}, {torch.get_num_threads()} torch thread(s) for "
             f"inference, torch {torch.__version__}. One run of `benchmarks/training.py`.", ""]
    tmp = Path(tempfile.mkdtemp(prefix="genline-bench-"))
    rows, infer_rows, int8_rows = [], [], []
    for name in ("ci", "default"):
        iters = (300 if name == "ci" else 150) if args.quick else PRESETS[name].iterations
        if name == "default" and args.default_iterations:
            iters = min(iters, args.default_iterations)
        cfg = preset(name, iterations=iters, max_seconds=1e9, patience=0, eval_every=iters)
        r = train(ds, cfg, tmp / name, progress=False)  # 1 thread: see docs/benchmarks/pipeline
        from genline.model import load_generator

        model, _ = load_generator(r.checkpoint)
        m = compute_metrics(torch_sample_fn(model), splits, evaluator, model.cfg.latent_dim,
                            EvalConfig())
        rows.append((name, cfg.generator.hidden, cfg.generator.depth, r.iterations, r.seconds,
                     r.iterations / r.seconds, m))
        onnx_path = tmp / name / contract.ONNX_FP32
        export_generator(model, onnx_path)
        sess = ort_session(onnx_path)
        for b in (1, 64):
            reps = 50 if b == 1 else 15
            t_torch = torch_time(model, b, reps)
            t_ort = time_session(sess, model.cfg.num_classes, model.cfg.latent_dim, b, reps)
            infer_rows.append((name, b, t_torch * 1e3, t_ort * 1e3, t_torch / t_ort))
        int8_path = tmp / name / contract.ONNX_INT8
        quantize_int8(onnx_path, int8_path)
        qsess = ort_session(int8_path)
        mq = compute_metrics(onnx_sample_fn(qsess), splits, evaluator, model.cfg.latent_dim,
                             EvalConfig())
        for b in (1, 64):
            reps = 50 if b == 1 else 15
            t_fp = time_session(sess, model.cfg.num_classes, model.cfg.latent_dim, b, reps)
            t_q = time_session(qsess, model.cfg.num_classes, model.cfg.latent_dim, b, reps)
            int8_rows.append((name, b, t_fp * 1e3, t_q * 1e3, t_fp / t_q,
                              {k: (m[k], mq[k]) for k in GATED_METRICS}))

    lines += ["### Training throughput and the quality it reaches (1 torch thread)", "",
              "| preset | width x depth | iterations | seconds | it/s | fd_ratio | "
              "cond. acc / evaluator acc | diversity_ratio | nn_distance_ratio |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, h, d, it, sec, ips, m in rows:
        lines.append(f"| {name} | {h} x {d} | {it} | {sec:.1f} | {ips:.1f} | {m['fd_ratio']:.3f} "
                     f"| {m['conditional_accuracy_ratio']:.3f} | {m['diversity_ratio']:.3f} | "
                     f"{m['nn_distance_ratio']:.3f} |")
    first = rows[0][6]
    lines += ["", f"Evaluator accuracy on the real test split: {first['evaluator_accuracy']:.3f}"
              f"; N = {first['num_samples']} samples per metric.", "",
              "### Inference: ONNX Runtime vs torch eager (whole sampler, 1 thread each)", "",
              "| preset | batch | torch eager ms | ONNX Runtime ms | ORT speedup |",
              "|---|---|---|---|---|"]
    for name, b, tt, to, ratio in infer_rows:
        lines.append(f"| {name} | {b} | {tt:.2f} | {to:.2f} | {ratio:.2f}x |")
    lines += ["", "### INT8 (dynamic quantization: MatMul/Gemm weights int8 per channel, "
              "activations per batch) vs FP32, ONNX Runtime", "",
              "| preset | batch | FP32 ms | INT8 ms | INT8 speedup | fd_ratio FP32 -> INT8 | "
              "cond. acc ratio | diversity_ratio |", "|---|---|---|---|---|---|---|---|"]
    for name, b, tf, tq, ratio, mm in int8_rows:
        cells = " | ".join(f"{a:.3f} -> {q:.3f}" for a, q in mm.values())
        lines.append(f"| {name} | {b} | {tf:.2f} | {tq:.2f} | {ratio:.2f}x | {cells} |")
    adopt = {name: ratio >= INT8_MIN_SPEEDUP and all(
        abs(q - a) <= INT8_MAX_METRIC_CHANGE * abs(a) for a, q in mm.values())
        for name, b, _, _, ratio, mm in int8_rows if b == 64}
    lines += ["", "Decision rule (genline.variants): adopt INT8 only when it is >= "
              f"{INT8_MIN_SPEEDUP}x faster at batch 64 and every gated metric moves < "
              f"{INT8_MAX_METRIC_CHANGE:.0%}; the trial runs on the graph that would serve (the "
              "teacher's, or the adopted student's). In this run the rule "
              + ", ".join(f"{'adopts' if ok else 'refuses'} INT8 for `{n}`"
                          for n, ok in adopt.items())
              + ". Static QDQ quantization, used before, was slower than FP32 here (0.16-0.57x: "
              "its quantize/dequantize pairs around small MatMuls are not fused into integer "
              "kernels).", ""]
    if args.quick:
        lines.insert(2, "**Quick smoke run (--quick): figures are not representative.**\n")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
