"""Pipeline benchmarks, measured side by side in one run; writes docs/benchmarks/pipeline.md.

1. The local runner's per-step overhead against training time: a no-op component and a no-op that
   imports what genline's steps import (torch, genline), run through kfp.local's
   SubprocessRunner, against the training step of a real pipeline run; and the whole pipeline
   against `genline.workflow.run_training` doing the same work in one process.
2. Data-parallel training throughput: 2 processes (gloo, 1 thread each) against 1 process
   (all threads), the same preset and a fixed number of iterations.

    .venv/bin/python benchmarks/pipeline.py [--iterations 300] [--repeats 5] [--rounds 2]

(No `from __future__ import annotations`: KFP reads the no-op components' annotations.)
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "benchmarks" / "pipeline.md"


def _noop_components():
    from kfp import dsl

    from components.image import PROJECT_IMAGE

    @dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
    def noop(x: int) -> int:
        return x

    @dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
    def noop_with_imports(x: int) -> int:
        import torch  # noqa: F401

        import genline.data  # noqa: F401

        return x

    return noop, noop_with_imports


def step_overhead(repeats: int, root: Path) -> dict[str, float]:
    """Median wall time of one kfp.local task that does nothing (with and without imports)."""
    import warnings

    import kfp.local

    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    out = {}
    for comp in _noop_components():
        times = []
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                assert comp(x=i).output == i
            times.append(time.perf_counter() - t0)
        out[comp.name.replace("-", "_")] = statistics.median(
            times[1:]
        )  # the first call warms the file cache
    return out


def pipeline_vs_direct(root: Path) -> dict[str, float]:
    """The same training (ci preset, built-in digits, no INT8) through kfp.local and in-process."""
    from genline.data import load_builtin
    from genline.evaluate import get_evaluator
    from genline.export import ExportConfig
    from genline.workflow import run_training
    from pipelines.run import run_local

    get_evaluator(load_builtin())  # trained once and cached: neither side pays for it below
    t0 = time.perf_counter()
    direct = run_training(
        None, "ci", root / "direct", export_cfg=ExportConfig(try_int8=False), progress=False
    )
    direct_s = time.perf_counter() - t0
    run = run_local({"preset": "ci", "try_int8": False}, root=root / "kfp")
    assert run.state == "SUCCEEDED", run.summary()
    train_meta = run.artifact("train-generator", "model")["metadata"]
    return {
        "direct_s": direct_s,
        "direct_train_s": direct.train_seconds,
        "pipeline_s": run.seconds,
        "pipeline_train_s": train_meta["seconds"],
        "pipeline_iterations": train_meta["iterations"],
        "direct_gate": direct.gate_passed,
        "pipeline_gate": bool(run.gate_passed),
        "steps": len(run.tasks),
    }


def ddp_throughput(iterations: int, rounds: int, root: Path) -> dict[str, dict[str, float]]:
    """Iterations/s and samples/s, a fixed number of iterations, configurations interleaved
    round by round (the machine's load drifts; medians over rounds):
    1 process with all threads, 1 process with 1 thread, 2 processes with 1 thread each."""
    import torch

    from genline.data import load_builtin
    from genline.distributed import DistributedConfig, train_distributed
    from genline.train import preset

    data = load_builtin()
    cfg = preset("ci", iterations=iterations, max_seconds=3600.0, eval_every=iterations)
    threads = torch.get_num_threads()
    configs = {
        f"1 process x {threads} threads": (1, threads),
        "1 process x 1 thread": (1, 1),
        "2 processes x 1 thread": (2, 1),
    }
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in configs}
    for r in range(rounds):
        for name, (world, t) in configs.items():
            torch.set_num_threads(t)
            t0 = time.perf_counter()
            res = train_distributed(
                data,
                "ci",
                root / f"r{r}-{world}-{t}",
                DistributedConfig(world_size=world, threads_per_rank=t),
                train_cfg=cfg,
            )
            samples[name].append((res.seconds, time.perf_counter() - t0))
            torch.set_num_threads(threads)
    out = {}
    for name, runs in samples.items():
        train_s = statistics.median(s for s, _ in runs)
        out[name] = {
            "train_s": train_s,
            "wall_s": statistics.median(w for _, w in runs),
            "iterations": iterations,
            "it_per_s": iterations / train_s,
            "samples_per_s": iterations * cfg.batch_size / train_s,
            "world": configs[name][0],
        }
    return out


def render(o: dict, p: dict, d: dict, args) -> str:
    per_step = o["noop_with_imports"]
    outside_pipe = p["pipeline_s"] - p["pipeline_train_s"]
    outside_direct = p["direct_s"] - p["direct_train_s"]
    steps = p["steps"]
    lines = [
        "## Pipeline: kfp.local overhead and data-parallel training",
        "",
        f"Measured by `benchmarks/pipeline.py` on {platform.machine()} with "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; all figures from one run. "
        f"Load average at the start: {args.load:.1f} (the machine is shared, so absolute "
        "times are inflated; the ratios are what to read).",
        "",
        "### Local runner overhead per step against training time",
        "",
        "| what | seconds |",
        "|---|---|",
        f"| kfp.local task, no-op | {o['noop']:.2f} |",
        f"| kfp.local task, no-op importing torch + genline (what a real step pays) | "
        f"{per_step:.2f} |",
        f"| training step of the pipeline run (ci preset, {p['pipeline_iterations']} "
        f"iterations) | {p['pipeline_train_s']:.1f} |",
        f"| whole pipeline run ({steps} steps, kfp.local) | {p['pipeline_s']:.1f} |",
        f"| the same work in one process (`run_training`, train {p['direct_train_s']:.1f} s) | "
        f"{p['direct_s']:.1f} |",
        f"| time outside training: pipeline / in-process | {outside_pipe:.1f} / "
        f"{outside_direct:.1f} |",
        "",
        f"- per-step overhead / training time: **{per_step / p['pipeline_train_s']:.3f}**",
        f"- all {steps} steps' overhead / training time: "
        f"**{steps * per_step / p['pipeline_train_s']:.2f}**",
        f"- pipeline / in-process, whole run: **{p['pipeline_s'] / p['direct_s']:.2f}x**; "
        f"outside training: **{outside_pipe / outside_direct:.2f}x** "
        f"(gate: pipeline {'passed' if p['pipeline_gate'] else 'FAILED'}, in-process "
        f"{'passed' if p['direct_gate'] else 'FAILED'}). Training time itself varies by tens of "
        "percent between identical runs on this shared machine, so the time outside training "
        "(data, validation, evaluation, export, and per step: a process, imports, artifact "
        "copies) is the fairer comparison.",
        "",
        f"### Data-parallel training: 2 processes vs 1 ({args.iterations} iterations, ci "
        f"preset, median of {args.rounds} interleaved rounds)",
        "",
        "| configuration | train s | iterations/s | samples/s | wall incl. spawn s |",
        "|---|---|---|---|---|",
    ]
    for name, r in d.items():
        lines.append(
            f"| {name} | {r['train_s']:.1f} | {r['it_per_s']:.1f} | "
            f"{r['samples_per_s']:.0f} | {r['wall_s']:.1f} |"
        )
    names = list(d)
    two, one_all, one_1 = (d[n]["samples_per_s"] for n in (names[2], names[0], names[1]))
    lines += [
        "",
        f"- 2 processes / 1 process (all threads): **{two / one_all:.2f}x**; "
        f"2 processes / 1 process (1 thread): **{two / one_1:.2f}x** "
        "(same global batch; each rank computes half of it and all-reduces gradients over gloo).",
        "- Read with the 1-thread row: the velocity MLP is small, so a training step is many "
        "tiny ops. On this shared 2-core machine one single-threaded process is the fastest "
        "configuration; intra-op threads lose to contention, and two ranks pay a gloo "
        "all-reduce of all gradients every step while halving compute that was not the "
        "bottleneck. Data parallelism is there for larger models and for a PyTorchJob whose "
        "replicas bring their own cores or GPUs; locally its job is to prove the DDP path "
        "(same gate as one process, tested).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    args.load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="genline-bench-") as tmp:
        root = Path(tmp)
        os.environ["GENLINE_HOME"] = str(root / "home")  # fresh state: nothing cached
        os.environ.pop("KFP_HOST", None)
        o = step_overhead(args.repeats, root / "noop")
        print("step overhead", o, flush=True)
        pv = pipeline_vs_direct(root)
        print("pipeline vs direct", pv, flush=True)
        d = ddp_throughput(args.iterations, args.rounds, root / "ddp")
        print("ddp", json.dumps(d), flush=True)
    text = render(o, pv, d, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
