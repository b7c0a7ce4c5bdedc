"""Native resolution: the `default` preset on real photo tiles at 8, 16, 32 and 64 pixels, one run.

    .venv/bin/python benchmarks/resolution.py [--sizes 8,16,32,64] [--preset default]

The same real photos (genline.photos: scikit-learn's china and flower, matplotlib's Grace
Hopper; one class each), cut on the same 32-pixel grid at every tile size so each resolution
has about the same number of images (64-pixel tiles overlap by half). Each size is trained
with genline's own run_training (train, evaluate, gate, export; no distillation, no INT8 trial)
and reported with its gate metrics and wall time. The built-in digits (8x8) are in the
distillation section. Writes docs/benchmarks/resolution.md.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "benchmarks" / "resolution.md"
GRID = 32
GOAL_FD, GOAL_NN, GOAL_SECONDS = 1.5, 0.8, 600


def main(argv=None) -> int:
    from genline.export import ExportConfig
    from genline.photos import photo_tiles
    from genline.workflow import run_training

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="8,16,32,64")
    ap.add_argument("--preset", default="default")
    args = ap.parse_args(argv)
    rows = []
    t_all = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="genline-resolution-"))
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            ds = photo_tiles(size, stride=GRID)
            t0 = time.monotonic()
            res = run_training(ds, args.preset, work / f"m{size}",
                               export_cfg=ExportConfig(try_int8=False), progress=False)
            row = {"size": size, "rows": len(ds), "wall": time.monotonic() - t0,
                   "train": res.train_seconds, "passed": res.gate_passed,
                   "latent": res.export.get("latent_dim"), **res.metrics}
            rows.append(row)
            print({k: row[k] for k in ("size", "rows", "wall", "passed", "fd_ratio",
                                       "nn_distance_ratio")}, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = time.monotonic() - t_all
    lines = [
        "## Native resolution", "",
        f"`benchmarks/resolution.py`, one run ({time.strftime('%Y-%m-%d')}, "
        f"{platform.machine()}, {total / 60:.1f} min): the `{args.preset}` preset trained at "
        "the images' own size on real photo tiles (scikit-learn's china and flower, "
        f"matplotlib's Grace Hopper; 3 classes), cut on the same {GRID}-pixel grid at every "
        "size. Above 64 values per image (so at 8x8 RGB too) the flow runs on principal "
        "components (GeneratorConfig.space "
        "\"pca\": 32 flow components and a per-class tail of up to 400, so `latent` is "
        "their sum); the evaluator grows a stride-2 stage per doubling. Wall time is the whole "
        "run_training (evaluator, training, scoring, gate, ONNX export and parity).", "",
        "| size | images | latent | gate | fd_ratio | cond. acc. ratio | diversity | nn ratio "
        "| evaluator acc. | train s | wall s |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']}x{r['size']} | {r['rows']} | {r['latent']} | "
            f"{'passed' if r['passed'] else 'FAILED'} | {r['fd_ratio']:.3f} | "
            f"{r['conditional_accuracy_ratio']:.3f} | {r['diversity_ratio']:.3f} | "
            f"{r['nn_distance_ratio']:.3f} | {r['evaluator_accuracy']:.3f} | {r['train']:.0f} | "
            f"{r['wall']:.0f} |")
    r32 = next((r for r in rows if r["size"] == 32), None)
    if r32:
        met = (r32["passed"] and r32["fd_ratio"] <= GOAL_FD
               and r32["nn_distance_ratio"] >= GOAL_NN and r32["wall"] < GOAL_SECONDS)
        lines += ["", f"Goal at 32x32 (gate passed, fd_ratio <= {GOAL_FD}, nn_distance_ratio "
                  f">= {GOAL_NN}, under {GOAL_SECONDS // 60} minutes): "
                  f"{'met' if met else 'MISSED'}."]
    lines.append("")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
