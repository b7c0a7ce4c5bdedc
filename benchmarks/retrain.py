"""Retraining latency: from a drift-triggered request to the retrained version serving.

One real Triton on loopback ports; the ci preset trained and published as version 1 (not timed);
then new accepted data of another style (the built-in digits plus the same digits drawn with
thick strokes) and the retrain run the sensor requests: the `finetune` preset warm-started
from the serving version, champion/challenger on the new data, export, publish. Stage times are
the wall time between the ends of consecutive kfp.local steps (each step's outputs are written
when it ends). Prints a markdown table; `--out` appends it to a file.

    .venv/bin/python benchmarks/retrain.py [--out docs/benchmarks/retrain.md]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEPS = ("validate-dataset", "train-generator", "evaluate-generator", "export-onnx",
         "build-tensorrt", "publish-model")


def _step_ends(run_dir: Path) -> dict[str, float]:
    ends = {}
    for step in STEPS:
        files = [p for p in (run_dir / step).rglob("*") if p.is_file()] if (
            run_dir / step).is_dir() else []
        if files:
            ends[step] = max(p.stat().st_mtime for p in files)
    return ends


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="genline-retrain-bench-"))
    os.environ["GENLINE_HOME"] = str(home)
    os.environ.pop("KFP_HOST", None)

    import numpy as np

    from genline import contract
    from genline.data import load_builtin, make_dataset
    from genline.ingest.simulation import apply_style
    from genline.npzfiles import save_npz
    from genline.serving import server as srv
    from genline.serving.registry import Registry
    from pipelines.run import run_local

    repo = home / "triton_repo"
    shutil.copytree(ROOT / "triton_repo" / contract.MODEL_NAME, repo / contract.MODEL_NAME,
                    ignore=shutil.ignore_patterns("[0-9]*", "quarantine"))
    ports: set[int] = set()
    while len(ports) < 3:
        ports.add(srv.free_port())
    http, grpc, metrics = sorted(ports)
    cfg = srv.ServerConfig(repository=repo, http_port=http, grpc_port=grpc, metrics_port=metrics,
                           run_dir=home / "run", predlog_dir=home / "predictions")
    srv.start(cfg)
    try:
        common = {"model_repository": str(repo), "triton_url": cfg.grpc_url, "try_int8": False,
                  "publish": True}
        first = run_local({**common, "preset": "ci"})
        assert first.published_version == 1, first.summary()
        b = load_builtin()
        new = make_dataset(
            np.concatenate([b.images, apply_style(b.images, "thick")]),
            np.concatenate([b.labels, b.labels]), b.classes, "digits+thick")
        npz = save_npz(new, home / "new.npz")
        trigger = {"kind": "drift", "window_key": "bench", "model": contract.MODEL_NAME,
                   "version": 1, "report": "", "scores": {}}
        t0 = time.time()
        t_start = time.perf_counter()
        run = run_local({**common, "dataset_uri": str(npz), "preset": "finetune",
                         "init_from": "serving", "champion_version": "serving",
                         "trigger": json.dumps(trigger)})
        total = time.perf_counter() - t_start
        ends = _step_ends(Path(run.run_dir))
        serving = Registry().serving(repo, contract.MODEL_NAME)
        scored = run.artifact("evaluate-generator", "scored_model")["metadata"]
        gate = json.loads((Path(run.model_dir) / contract.GATE).read_text())
        fd = gate["checks"].get("champion:fd_ratio", {})
    finally:
        srv.stop(cfg.resolved_run_dir())
    rows, prev = [], t0
    for step in STEPS:
        if step in ends:
            rows.append(f"| {step} | {ends[step] - prev:.1f} |")
            prev = ends[step]
    lines = [
        "## Retraining: request -> retrained version serving (finetune, ci architecture)",
        "",
        f"One run on {os.cpu_count()} CPUs; data: built-in digits + the same digits drawn thick "
        f"({len(new)} images). State {run.state}; challenger {scored.get('challenger')} "
        f"(fd_ratio {fd.get('value')} vs champion {fd.get('champion')}); serving version "
        f"{serving}.",
        "",
        "| stage (kfp.local step) | seconds |",
        "|---|---|",
        *rows,
        f"| **pipeline total** | **{total:.1f}** |",
        "",
        "Add the sensor's tick interval (minimum_interval_seconds = 60: at most one minute from a "
        "staleness verdict to the request) for detection -> serving.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a") as fh:
            fh.write(text + "\n")
    shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
