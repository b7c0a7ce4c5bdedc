"""Few-step sampling benchmark: the `default` teacher against its distilled student, one run.

    .venv/bin/python benchmarks/distill.py [--duration 5] [--rounds 3] [--model DIR]

In one run, side by side:
  1. trains the `default` preset on the built-in digits with distillation (genline's own
     run_training: train, evaluate, gate, distill, export), timing training and distillation
     against the preset's budget (its max_seconds) plus 50%;
  2. exports the same teacher without the student twice: its FP32 graph (today's model, the
     baseline) and as genline exports it now (with the INT8 trial);
  3. serves the four (today's model, the teacher as exported now, the student's FP32 graph,
     the student after its own INT8 trial) from their own Triton Inference Servers (genline's
     config and tuning, prediction logging on) and drives them with the closed-loop load
     generator of benchmarks/serving.py at concurrency 8, single-image requests and client
     batches of 32, rounds interleaved, median images/s kept;
  4. reports the quality of each (the paired evaluation distill.json records; the INT8 trials'
     paired FP32/INT8 evaluations), the per-image cost in process (ONNX Runtime, 1 thread, from
     export.json) and the graphs' node counts before and after simplification;
  5. serves a python-backend model that returns blank images with the same config, binary,
     client and concurrency: the most this stack serves on this machine, whatever the model.

Writes docs/benchmarks/distill.md (assembled into docs/benchmarks.md by run_all.py).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving import TritonBench, run_load, triton_call  # noqa: E402

from genline import contract  # noqa: E402
from genline.fsutil import read_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "benchmarks" / "distill.md"
GOALS = {"speedup": 10.0, "fd_ratio": 1.2, "conditional_accuracy_ratio": 0.97,
         "diversity_ratio": 0.8, "nn_distance_ratio": 0.8, "budget_factor": 1.5}
CONCURRENCY = 8
BATCHES = (1, 32)


def train_with_distillation(out: Path) -> dict:
    from genline.data import load_builtin
    from genline.distill import distill_config
    from genline.train import PRESETS
    from genline.workflow import run_training

    t0 = time.monotonic()
    res = run_training(load_builtin(), "default", out, distill=distill_config("default"),
                       progress=False)
    wall = time.monotonic() - t0
    if not res.gate_passed:
        raise SystemExit(f"the default teacher failed its gate: {res.gate_reasons}")
    return {"wall_seconds": wall, "budget_seconds": PRESETS["default"].max_seconds}


def teacher_only(model_dir: Path, out: Path, int8: bool) -> Path:
    """The same checkpoint exported without its student. With int8 False: today's model (the
    FP32 teacher graph, the issue's baseline); with int8 True: what genline serves now when
    distillation is off (the teacher's INT8 graph where the INT8 rule adopts it)."""
    from genline.data import load_builtin
    from genline.export import ExportConfig, export_model_dir

    shutil.copytree(model_dir, out)
    for name in (contract.DISTILL_REPORT, contract.STUDENT_CHECKPOINT, *contract.STUDENT_VARIANTS,
                 contract.ONNX_INT8):
        (out / name).unlink(missing_ok=True)
    export_model_dir(out, load_builtin(), ExportConfig(try_int8=int8))
    return out


def student_served(model_dir: Path, out: Path, int8: bool = True) -> Path:
    """The student as genline serves it (int8: after its own INT8 trial), or its FP32 graph
    (int8 False: what distillation alone gives). `model_dir` itself when its student was adopted
    and nothing else differs; otherwise a copy that serves the student anyway, for the speed
    comparison only (the report states the run's real decision)."""
    from genline.data import load_builtin
    from genline.export import ExportConfig, export_model_dir
    from genline.fsutil import atomic_write_json

    e = read_json(model_dir / contract.EXPORT_REPORT)
    if int8 and e.get("serving_variant") in contract.STUDENT_VARIANTS:
        return model_dir
    if e.get("serving_variant") not in contract.STUDENT_VARIANTS:
        print("the student was not adopted (" + "; ".join(e["student"]["reasons"]) + "): "
              "serving a copy that adopts it, to measure its speed", flush=True)
    shutil.copytree(model_dir, out)
    d = read_json(out / contract.DISTILL_REPORT)
    d.update(adoptable=True, reasons=[])
    # its INT8 graph answers to the student rule too: widen the copy's tolerance past the
    # student's own gap, so the INT8 rule (>= 1.3x, within 5% of the FP32 student) decides
    d["config"]["adoption_tolerance"] = FORCED_TOLERANCE
    atomic_write_json(out / contract.DISTILL_REPORT, d)
    export_model_dir(out, load_builtin(), ExportConfig(try_int8=int8))
    return out


PROCESS_KINDS = ("client (this benchmark)", "tritonserver", "python-backend stub",
                 "prediction-log compactor")
TEACHER_NOW = "teacher INT8"  # the teacher as genline serves it now without distillation
STUDENT_FP32 = "student FP32"  # the student's FP32 graph: what distillation alone gives
FORCED_TOLERANCE = 0.10  # the speed-only copy of a student the 5% rule refused
CPU_SECONDS, CPU_SETTLE = 12.0, 13.0  # load, then idle past the log's 10 s compaction period


def _kind(comm: str, cmd: str) -> str | None:
    if comm == "tritonserver":
        return PROCESS_KINDS[1]
    if comm.startswith("triton_python"):
        return PROCESS_KINDS[2]
    if "genline.serving.compactor" in cmd:
        return PROCESS_KINDS[3]
    return None


def tree_cpu(root: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by `root` (a tritonserver) and every process
    below it (stubs, their prediction-log compactors), by kind, plus this process's own."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    procs = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        f = stat[stat.rindex(")") + 2:].split()
        procs[int(pid)] = (stat[stat.index("(") + 1: stat.rindex(")")], cmd, int(f[1]),
                           (int(f[11]) + int(f[12])) / tick)
    out = dict.fromkeys(PROCESS_KINDS, 0.0)
    out[PROCESS_KINDS[0]] = procs.get(os.getpid(), ("", "", 0, 0.0))[3]
    for pid, (comm, cmd, _, used) in procs.items():
        p = pid
        while p in procs and p != root and p > 1:
            p = procs[p][2]
        kind = _kind(comm, cmd)
        if p == root and kind:
            out[kind] += used
    return out


def cpu_per_request(name: str, url: str, root: int, **call) -> dict[str, float]:
    """CPU ms per single-image request of each process kind: CPU_SECONDS of load at
    CONCURRENCY, then CPU_SETTLE idle seconds so the prediction log compacts what it got; the
    CPU of the server's process tree over both, and the client's over the load."""
    before = tree_cpu(root)
    res = run_load(name, triton_call(url, 1, **call), CONCURRENCY, 1, CPU_SECONDS)
    client = tree_cpu(root)[PROCESS_KINDS[0]]
    time.sleep(CPU_SETTLE)
    after = tree_cpu(root)
    after[PROCESS_KINDS[0]] = client
    if res.errors:
        raise SystemExit(f"{name}: {res.errors} failed requests")
    n = res.rps * (CPU_SECONDS + 0.5)  # run_load warms up for 0.5 s before its window
    print(f"{name}: {res.sps:.0f} images/s while profiling", flush=True)
    return {k: 1e3 * (after[k] - before[k]) / n for k in PROCESS_KINDS}


def serve_side_by_side(dirs: dict[str, Path], work: Path, duration: float, rounds: int,
                       cpu: dict) -> dict[tuple[str, int], list[float]]:
    """images/s of each served model, per (model, batch), one value per round; then CPU ms per
    single-image request by process kind into cpu[model]."""
    from genline.serving.config import CpuTuning
    from genline.serving.process import read_pidfile

    benches = {name: TritonBench(d, work / name.replace(" ", "_")) for name, d in dirs.items()}
    out: dict[tuple[str, int], list[float]] = {}
    try:
        for b in benches.values():
            b.start(CpuTuning())
        time.sleep(5.0)  # the prediction-log compactors import pandas once, not in a round
        for r in range(rounds):
            for batch in BATCHES:
                for name, bench in benches.items():
                    res = run_load(f"{name} b{batch}", triton_call(bench.cfg.grpc_url, batch),
                                   CONCURRENCY, batch, duration)
                    if res.errors:
                        raise SystemExit(f"{name}: {res.errors} failed requests")
                    out.setdefault((name, batch), []).append(res.sps)
                    print(f"round {r} {name:8s} batch {batch:2d}: {res.sps:8.1f} images/s "
                          f"(p50 {res.pct(50):.1f} ms)", flush=True)
        for name in dirs:
            bench = benches[name]
            pid = int(read_pidfile(bench.cfg.resolved_run_dir())["pid"])
            cpu[name] = cpu_per_request(f"{name} cpu", bench.cfg.grpc_url, pid)
    finally:
        for b in benches.values():
            b.stop()
    return out


NOOP_MODEL = """\
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    \"\"\"Returns blank images: what the stack costs when the model costs nothing.\"\"\"

    def initialize(self, args):
        import json

        out = json.loads(args["model_config"])["output"][0]
        self.shape = tuple(int(d) for d in out["dims"])

    def execute(self, requests):
        responses = []
        for request in requests:
            n = pb_utils.get_input_tensor_by_name(request, "label").as_numpy().shape[0]
            image = np.zeros((n, *self.shape), np.float32)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("image", image)]))
        return responses
"""


def stack_ceiling(model_dir: Path, work: Path, duration: float, rounds: int,
                  cpu: dict) -> dict[int, list[float]]:
    """images/s of a python-backend model that does no work, with the served model's config
    (genline's CPU tuning, dynamic batching, its input and output shapes) on the same Triton
    binary, driven by the same client at the same concurrency: the most any model can be
    served at through this stack on this machine."""
    import subprocess

    from genline.netutil import free_port
    from genline.serving import server as srv
    from genline.serving.admin import admin_token
    from genline.serving.command import build_command, server_env
    from genline.serving.config import CpuTuning, ModelShape, render_cpu_config
    from genline.serving.install import find_triton, prepare_backend_dir

    exp = read_json(model_dir / contract.EXPORT_REPORT)
    shape = ModelShape(latent_dim=int(exp["latent_dim"]),
                       image_shape=tuple(exp["image_shape"]), num_classes=int(exp["num_classes"]))
    repo = work / "repo"
    (repo / "noop" / "1").mkdir(parents=True, exist_ok=True)
    (repo / "noop" / "config.pbtxt").write_text(render_cpu_config(shape, CpuTuning(), "noop"))
    (repo / "noop" / "1" / "model.py").write_text(NOOP_MODEL)
    install = find_triton()
    ports = [free_port() for _ in range(3)]
    cfg = srv.ServerConfig(repository=repo, http_port=ports[0], grpc_port=ports[1],
                           metrics_port=ports[2], run_dir=work / "run",
                           predlog_dir=work / "predictions", model="noop")
    # genline's own command line (explicit model control, restricted APIs, shm prefix)
    cmd = build_command(cfg, install, prepare_backend_dir(install, work / "run"),
                        admin_token(work / "run", create=True), load_model=True)
    log = open(work / "triton.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                            env=server_env(install, cfg), start_new_session=True)
    out: dict[int, list[float]] = {}
    try:
        import tritonclient.grpc as grpcclient

        client = grpcclient.InferenceServerClient(cfg.grpc_url)
        deadline = time.monotonic() + 60
        while not _ready(client, "noop"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the no-op Triton did not come up: see {work / 'triton.log'}")
            time.sleep(0.2)
        for r in range(rounds):
            for batch in BATCHES:
                res = run_load(f"no-op b{batch}", triton_call(cfg.grpc_url, batch, model="noop",
                                                              latent=shape.latent_dim),
                               CONCURRENCY, batch, duration)
                if res.errors:
                    raise SystemExit(f"no-op model: {res.errors} failed requests")
                out.setdefault(batch, []).append(res.sps)
                print(f"round {r} no-op    batch {batch:2d}: {res.sps:8.1f} images/s", flush=True)
        cpu["no-op"] = cpu_per_request("no-op cpu", cfg.grpc_url, proc.pid, model="noop",
                                       latent=shape.latent_dim)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    return out


def _ready(client, model: str) -> bool:
    try:
        return client.is_model_ready(model)
    except Exception:  # not listening yet
        return False


def fmt(x, d=3):
    return "-" if x is None else f"{x:.{d}f}"


def write_report(model_dir: Path, dirs: dict[str, Path], timing: dict, served: dict,
                 duration: float, rounds: int, wall: float, ceiling: dict[int, list[float]],
                 cpu: dict) -> None:
    d = read_json(model_dir / contract.DISTILL_REPORT)
    e = read_json(model_dir / contract.EXPORT_REPORT)  # the run's own decisions
    es = read_json(dirs["student"] / contract.EXPORT_REPORT)  # what served as the student
    et8 = read_json(dirs[TEACHER_NOW] / contract.EXPORT_REPORT)
    tr = read_json(model_dir / "train.json")
    st, sq, tq = es["student"], es["student"].get("int8") or {}, et8["int8"]
    student_graph = es["serving_variant"]
    teacher_now_graph = et8["serving_variant"]
    med = {k: float(np.median(v)) for k, v in served.items()}
    train_s = float(tr["seconds"])
    distill_s = float(d["pool_seconds"] + d["train_seconds"] + d["evaluate_seconds"])
    budget = timing["budget_seconds"] * GOALS["budget_factor"]
    # the gated metrics as distill.json pairs them; nn_distance_ratio (a gate floor, not
    # compared with the teacher) from metrics.json and the student's gate checks
    mt = {**d["metrics_teacher"],
          "nn_distance_ratio": read_json(model_dir / contract.METRICS)["nn_distance_ratio"]}
    ms = {**d["metrics_student"],
          "nn_distance_ratio": d["student_gate"]["checks"]["nn_distance_ratio"]["value"]}
    served_int8 = student_graph == contract.ONNX_STUDENT_INT8
    mserved = sq["metrics_int8"] if served_int8 else ms
    lines = [
        "## Few-step sampling (distillation)", "",
        f"`benchmarks/distill.py`, one run ({time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"{wall / 60:.1f} min): the `default` preset trained on the built-in digits with "
        "distillation; then the same teacher and its student each served by its own Triton "
        "(genline's config, prediction logging on), driven in interleaved rounds by the "
        f"closed-loop load generator of benchmarks/serving.py at concurrency {CONCURRENCY} "
        f"({rounds} rounds of {duration:g} s per cell, median). Teacher: "
        f"{st['teacher_evaluations']} network evaluations per image (10 midpoint steps with "
        f"classifier-free guidance); student: {st['student_evaluations']} (2 Euler steps, "
        "guidance folded in).", "",
        "Four servers: **today's model** (the FP32 teacher graph: what served before this "
        f"work, the baseline of the 10x goal); **{TEACHER_NOW}** (the teacher as genline "
        f"exports it now without distillation: `{teacher_now_graph}`, the INT8 rule's choice); "
        f"the **{STUDENT_FP32}** (the student's FP32 graph: distillation alone); the "
        f"**student** as genline serves it (`{student_graph}`: the student's graph after its "
        "own INT8 trial).", "",
        "### Served through Triton (images/s)", "",
        "genline's committed CPU config (`CpuTuning()`: 1 instance, 2 ONNX Runtime threads; "
        "a model cheaper than 1 ms per image runs on 1 thread, see docs/serving.md):", "",
        f"| requests | today's model | {TEACHER_NOW} | {STUDENT_FP32} | student | "
        f"student / today's model | {STUDENT_FP32} / today's model | student / {TEACHER_NOW} "
        "| goal |", "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    ok = {}
    for b in BATCHES:
        t, t8, s = med[("teacher", b)], med[(TEACHER_NOW, b)], med[("student", b)]
        s32 = med[(STUDENT_FP32, b)]
        ok[f"served_b{b}"] = s / t >= GOALS["speedup"]
        what = "single image" if b == 1 else f"batches of {b}"
        lines.append(f"| {what} | {t:.0f} | {t8:.0f} | {s32:.0f} | {s:.0f} | **{s / t:.1f}x** | "
                     f"{s32 / t:.1f}x | {s / t8:.1f}x | "
                     f"&ge; 10x {'met' if ok[f'served_b{b}'] else 'missed'} |")
    lines += ["", f"What each part gives: distillation alone ({STUDENT_FP32} against today's "
              f"model), INT8 alone ({TEACHER_NOW} against today's model), both (the student as "
              f"served). Against the teacher as genline exports it now ({TEACHER_NOW}), the "
              "distilled student is the last column."]
    names = ("teacher", TEACHER_NOW, STUDENT_FP32, "student")
    lines += ["", "Rounds (images/s): " + "; ".join(
        f"{n} b{b}: " + ", ".join(f"{v:.0f}" for v in served[(n, b)])
        for b in BATCHES for n in names), ""]
    cell = {b: float(np.median(v)) for b, v in ceiling.items()}
    lines += ["The stack's ceiling on this machine: a python-backend model that returns blank "
              "images, with the same config, Triton binary, client and concurrency (no ONNX "
              "Runtime, no prediction log): " + "; ".join(
                  f"{'single image' if b == 1 else f'batches of {b}'} {cell[b]:.0f} images/s "
                  f"(10x today's model is {10 * med[('teacher', b)]:.0f}; the student reaches "
                  f"{med[('student', b)] / cell[b]:.0%} of the ceiling)" for b in BATCHES) + ".",
              "", f"Where the CPU goes (ms of CPU per single-image request: {CPU_SECONDS:g} s "
              f"of load at concurrency {CONCURRENCY}, then {CPU_SETTLE:g} s idle so the "
              "prediction log compacts what it got; each server's own process tree; the 2 "
              "cores give 2,000 ms per second, so images/s is at most 2,000 / the total):", "",
              f"| process | today's model | {TEACHER_NOW} | {STUDENT_FP32} | student | "
              "no-op model |", "|---|---:|---:|---:|---:|---:|"]
    who = (*names, "no-op")
    per = cpu
    for kind in PROCESS_KINDS:
        lines.append(f"| {kind} | " + " | ".join(f"{per[w][kind]:.2f}" for w in who) + " |")
    lines += ["| **total** | " + " | ".join(f"**{sum(per[w].values()):.2f}**" for w in who)
              + " |", ""]
    stub = PROCESS_KINDS[2]
    fixed = sum(v for k, v in per["student"].items() if k != stub) + per["no-op"][stub]
    teacher_total = sum(per["teacher"].values())
    lines += [f"Everything but the student's own stub costs {fixed:.2f} ms per single-image "
              "request here (the client, tritonserver and the prediction-log compactor as "
              "measured with the student, plus the no-op model's stub); with today's model at "
              f"{teacher_total:.2f} ms, a model that cost nothing would be served at most "
              f"{teacher_total / fixed:.1f}x faster on this machine with the prediction log on.",
              ""]
    lines += ["### In process (ONNX Runtime, 1 thread, ms per image)", "",
              "| batch | teacher FP32 | student FP32 | student speedup |", "|---:|---:|---:|---:|"]
    for b in (1, 256):
        lines.append(f"| {b} | {st[f'teacher_batch{b}_ms_per_image']:.3f} | "
                     f"{st[f'student_batch{b}_ms_per_image']:.3f} | "
                     f"{st[f'speedup_batch{b}']:.1f}x |")
    lines += ["", "INT8 (dynamic quantization, genline.variants), each against its own FP32 "
              "graph in the same measurement (ms per image):", "",
              "| graph | batch 1 FP32 | batch 1 INT8 | speedup | batch 64 FP32 | batch 64 INT8 "
              "| speedup | adopted |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, q in (("teacher", tq), ("student", sq)):
        if "fp32_batch1_ms" not in q:
            lines.append(f"| {name} | - | - | - | - | - | - | {'; '.join(q.get('reasons', []))} |")
            continue
        lines.append(f"| {name} | {q['fp32_batch1_ms']:.3f} | {q['int8_batch1_ms']:.3f} | "
                     f"{q['speedup_batch1']:.1f}x | {q['fp32_batch64_ms'] / 64:.3f} | "
                     f"{q['int8_batch64_ms'] / 64:.3f} | {q['speedup_batch64']:.1f}x | "
                     f"{'yes' if q['adopted'] else 'no: ' + '; '.join(q['reasons'])} |")
    nt, ns = e["parity"], st["parity"]
    lines += ["", "Graphs (nodes / Constant / Shape), exported -> simplified (ORT basic offline "
              "optimisation, parity checked on the simplified graph): teacher "
              f"{_nodes(nt)}; student {_nodes(ns)}.", ""]
    lines += ["### Quality", "",
              "Teacher and student: the paired evaluation in distill.json (same evaluator, same "
              "seed). INT8 graphs: measured beside their own FP32 graph by the INT8 trial (same "
              "evaluator and seed as each other). The goals apply to the graph that serves.", "",
              f"| metric | teacher | {TEACHER_NOW} | student | student, served graph | goal |",
              "|---|---:|---:|---:|---:|---|"]
    t8m = tq.get("metrics_int8") or {}
    for k in ("fd_ratio", "conditional_accuracy_ratio", "diversity_ratio", "nn_distance_ratio"):
        goal = GOALS[k]
        met = mserved[k] <= goal if k == "fd_ratio" else mserved[k] >= goal
        ok[k] = met
        lines.append(f"| {k} | {fmt(mt[k])} | {fmt(t8m.get(k))} | {fmt(ms[k])} | "
                     f"{fmt(mserved[k])} | {'&le;' if k == 'fd_ratio' else '&ge;'} {goal} "
                     f"{'met' if met else 'missed'} |")
    real = e.get("student") or {}
    decision = "adopted: the student serves" if real.get("adopted") else (
        "not adopted: " + "; ".join(real.get("reasons") or []) + f" (the run serves "
        f"`{e['serving_variant']}`; the student's speed above comes from a copy that adopts it, "
        f"with a {FORCED_TOLERANCE:.0%} tolerance so its INT8 graph is judged by the INT8 rule)")
    ok["budget"] = train_s + distill_s <= budget
    lines += ["", f"Adoption (student passes the gate, no gated metric > 5% worse): {decision}.",
              "", "### Time to produce it", "",
              "| step | seconds |", "|---|---:|",
              f"| teacher training ({tr['iterations']} iterations) | {train_s:.0f} |",
              f"| distillation: teacher sample pool ({d['config']['pool']}) | "
              f"{d['pool_seconds']:.0f} |",
              f"| distillation: student training ({d['iterations_run']} iterations) | "
              f"{d['train_seconds']:.0f} |",
              f"| distillation: scoring the student | {d['evaluate_seconds']:.0f} |",
              f"| **training + distillation** | **{train_s + distill_s:.0f}** |",
              f"| the `default` budget ({timing['budget_seconds']:.0f} s) + 50% | {budget:.0f} |",
              f"| whole run_training (+ evaluation, INT8 trial, exports, timing) | "
              f"{timing['wall_seconds']:.0f} |", "",
              "Goals: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in ok.items())
              + ".", ""]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {OUT}")


def _nodes(p: dict) -> str:
    a, b = p["nodes_exported"], p["nodes_simplified"]
    return (f"{a['nodes']}/{a['constant']}/{a['shape']} -> "
            f"{b['nodes']}/{b['constant']}/{b['shape']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", help="the student/ directory an earlier --keep run left (skips "
                    "training; reads timing.json beside it)")
    ap.add_argument("--keep", help="keep the model directories here")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="genline-distill-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.model:
            model_dir = Path(args.model)
            timing = read_json(model_dir.parent / "timing.json")
        else:
            model_dir = work / "student"
            timing = train_with_distillation(model_dir)
            (work / "timing.json").write_text(json.dumps(timing))
        dirs = {"teacher": teacher_only(model_dir, work / "teacher", int8=False),
                TEACHER_NOW: teacher_only(model_dir, work / "teacher_int8", int8=True),
                STUDENT_FP32: student_served(model_dir, work / "student_fp32", int8=False),
                "student": student_served(model_dir, work / "student_served")}
        cpu: dict = {}
        served = serve_side_by_side(dirs, work / "serve", args.duration, args.rounds, cpu)
        ceiling = stack_ceiling(dirs["student"], work / "noop", args.duration, args.rounds, cpu)
        write_report(model_dir, dirs, timing, served, args.duration, args.rounds,
                     time.monotonic() - t0, ceiling, cpu)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
