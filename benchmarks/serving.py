"""Serving benchmark: Triton (genline's config) side by side with the alternatives, one run.

    python benchmarks/serving.py [--model DIR] [--duration 3] [--no-sweep]

One closed-loop load generator (Python threads, each with its own client) drives, in one run:
  - in-process ONNX Runtime (the compute limit) and in-process torch eager;
  - a bare grpcio echo server with Triton's request/response sizes (the transport floor);
  - Triton gRPC with genline's config, concurrency 1/8/32, single samples and client batches of 32;
  - a FastAPI + torch server, and a hand-rolled grpcio + ONNX Runtime server.
Every server runs in its own process. First a small sweep of Triton settings (instances,
dynamic-batching delay, ORT threads, spinning) at concurrency 8; the best goes into the table.
Writes docs/benchmarks/serving.md (figures and ratios from this one run).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from genline import contract
from genline.netutil import free_port

ROOT = Path(__file__).resolve().parents[1]
LATENT = 64


# ------------------------------------------------------------------------------------------------
# load generator
# ------------------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    concurrency: int
    batch: int
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def sps(self) -> float:
        return self.rps * self.batch

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


def run_load(name, make_call, concurrency, batch, duration, warmup=0.5) -> Result:
    """Closed loop: `concurrency` threads, each with its own `call = make_call()`."""
    calls = [make_call() for _ in range(concurrency)]
    lats: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    start_evt = threading.Event()
    t_begin = [0.0]
    stop_at = [0.0]

    def worker(i):
        call = calls[i]
        start_evt.wait()
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at[0]:
                break
            try:
                call()
            except Exception:
                errors[i] += 1
                continue
            t1 = time.perf_counter()
            if t0 >= t_begin[0]:
                lats[i].append((t1 - t0) * 1e3)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    now = time.perf_counter()
    t_begin[0] = now + warmup
    stop_at[0] = now + warmup + duration
    start_evt.set()
    for t in threads:
        t.join()
    flat = [x for li in lats for x in li]
    # requests that started in the window and finished (the last ones may end a little late)
    return Result(name, concurrency, batch, len(flat), duration, flat, sum(errors))


def inputs(batch, seed=0, latent=LATENT):
    rng = np.random.default_rng(seed)
    labels = (np.arange(batch) % 10).astype(np.int64)
    z = rng.standard_normal((batch, latent)).astype(np.float32)
    return labels, z


# ------------------------------------------------------------------------------------------------
# servers run in their own processes: `python benchmarks/serving.py --serve KIND ...`
# ------------------------------------------------------------------------------------------------


def _ort_session(path, threads=1, spinning=False):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def serve_echo(port: int) -> None:
    """Bare grpcio: returns `n` zero bytes, `n` read from the request's first 4 bytes."""
    import grpc

    def handle(req, ctx):
        n = int.from_bytes(req[:4], "little")
        return bytes(n)

    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Call": grpc.unary_unary_rpc_method_handler(handle)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def serve_grpc_ort(port: int, onnx_path: str) -> None:
    """A hand-rolled grpcio + ONNX Runtime server (no batching, one ORT call per request)."""
    import grpc

    sess = _ort_session(onnx_path)

    def handle(req, ctx):
        b = int.from_bytes(req[:4], "little")
        labels = np.frombuffer(req[4 : 4 + 8 * b], np.int64)
        z = np.frombuffer(req[4 + 8 * b :], np.float32).reshape(b, LATENT)
        return sess.run(
            [contract.OUTPUT_IMAGE], {contract.INPUT_LABEL: labels, contract.INPUT_Z: z}
        )[0].tobytes()

    handler = grpc.method_handlers_generic_handler(
        "bench.Gen", {"Call": grpc.unary_unary_rpc_method_handler(handle)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def serve_fastapi(port: int, model_dir: str) -> None:
    """FastAPI + torch eager, JSON in and out: what many users build instead."""
    import torch
    import uvicorn
    from fastapi import FastAPI
    from pydantic import BaseModel

    from genline.model import load_generator

    model, _ = load_generator(Path(model_dir) / "checkpoint.pt")
    model.eval()
    app = FastAPI()

    class Req(BaseModel):
        labels: list[int]
        z: list[list[float]]

    def generate(req):
        with torch.inference_mode():
            img = model(torch.tensor(req.labels), torch.tensor(req.z, dtype=torch.float32))
        return {"image": img.numpy().tolist()}

    generate.__annotations__ = {"req": Req}  # real class: this module postpones annotations
    app.post("/generate")(generate)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _wait_port(port: int, proc: subprocess.Popen, timeout=60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


def spawn(kind: str, *extra: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--port", str(port), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_port(port, proc)
    time.sleep(0.5)
    return proc, port


def kill(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


# ------------------------------------------------------------------------------------------------
# clients
# ------------------------------------------------------------------------------------------------


def ort_call(sess, batch):
    labels, z = inputs(batch)
    return lambda: (
        lambda: sess.run(
            [contract.OUTPUT_IMAGE], {contract.INPUT_LABEL: labels, contract.INPUT_Z: z}
        )
    )


def torch_call(model, batch):
    import torch

    labels, z = inputs(batch)
    tl, tz = torch.from_numpy(labels), torch.from_numpy(z)

    def make():
        def call():
            with torch.inference_mode():
                model(tl, tz)

        return call

    return make


def raw_grpc_call(port, method, payload):
    import grpc

    def make():
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = channel.unary_unary(method)
        return lambda: stub(payload, timeout=30)

    return make


def echo_payload(batch) -> bytes:
    labels, z = inputs(batch)
    response = batch * 64 * 4
    return response.to_bytes(4, "little") + labels.tobytes() + z.tobytes()


def gen_payload(batch) -> bytes:
    labels, z = inputs(batch)
    return batch.to_bytes(4, "little") + labels.tobytes() + z.tobytes()


def triton_call(url, batch, model=contract.MODEL_NAME, latent=LATENT):
    import tritonclient.grpc as grpcclient

    labels, z = inputs(batch, latent=latent)

    def make():
        client = grpcclient.InferenceServerClient(url)
        ins = [
            grpcclient.InferInput(contract.INPUT_LABEL, [batch, 1], "INT64"),
            grpcclient.InferInput(contract.INPUT_Z, [batch, latent], "FP32"),
        ]
        ins[0].set_data_from_numpy(labels.reshape(-1, 1))
        ins[1].set_data_from_numpy(z)
        outs = [grpcclient.InferRequestedOutput(contract.OUTPUT_IMAGE)]
        return lambda: client.infer(model, ins, outputs=outs)

    return make


def fastapi_call(port, batch):
    import http.client

    labels, z = inputs(batch)
    body = json.dumps({"labels": labels.tolist(), "z": z.tolist()})

    def make():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def call():
            conn.request("POST", "/generate", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise RuntimeError(data[:200])

        return call

    return make


# ------------------------------------------------------------------------------------------------
# Triton with a given tuning
# ------------------------------------------------------------------------------------------------


class TritonBench:
    def __init__(self, model_dir: Path, workdir: Path):
        from genline.serving import server as srv
        from genline.serving.publish import Target

        self.srv = srv
        self.model_dir = model_dir
        self.repo = workdir / "repo"
        self.home = workdir / "home"
        ports = sorted({free_port() for _ in range(3)})
        while len(ports) < 3:
            ports = sorted(set(ports) | {free_port()})
        self.cfg = srv.ServerConfig(
            repository=self.repo,
            http_port=ports[0],
            grpc_port=ports[1],
            metrics_port=ports[2],
            run_dir=self.home / "run",
            predlog_dir=self.home / "predictions",
        )
        self.target = Target(
            repository=self.repo,
            url=self.cfg.grpc_url,
            run_dir=self.home / "run",
            registry_path=self.home / "registry.json",
            profile_dir=self.home / "profiles",
            alert_dir=self.home / "alerts",
        )
        self.published = False

    def start(self, tuning):
        from genline.serving.config import write_configs

        self.srv.stop(self.cfg.resolved_run_dir())
        write_configs(self.repo, cpu=tuning)
        self.srv.start(self.cfg)
        if not self.published:
            from genline.serving.publish import publish

            publish(self.model_dir, self.target)
            self.published = True
        # warm the gRPC path
        call = triton_call(self.cfg.grpc_url, 1)()
        for _ in range(20):
            call()

    def first_request_ms(self) -> tuple[float, float]:
        """Restart (the model loads and warms up inside initialize), then time the first and
        the second request from a fresh client."""
        self.srv.stop(self.cfg.resolved_run_dir())
        self.srv.start(self.cfg)
        time.sleep(3.0)  # let the prediction-log watcher finish importing pandas/pyarrow
        call = triton_call(self.cfg.grpc_url, 1)()
        t0 = time.perf_counter()
        call()
        t1 = time.perf_counter()
        call()
        t2 = time.perf_counter()
        return (t1 - t0) * 1e3, (t2 - t1) * 1e3

    def stats(self):
        import tritonclient.grpc as grpcclient

        c = grpcclient.InferenceServerClient(self.cfg.grpc_url)
        s = c.get_inference_statistics("genline_generator", as_json=True)["model_stats"]
        c.close()
        out = {"inferences": 0, "executions": 0, "queue_ns": 0, "compute_ns": 0, "count": 0}
        for m in s:
            out["inferences"] += int(m.get("inference_count", 0))
            out["executions"] += int(m.get("execution_count", 0))
            st = m["inference_stats"]
            out["count"] += int(st["success"]["count"])
            out["queue_ns"] += int(st["queue"]["ns"])
            out["compute_ns"] += int(st["compute_infer"]["ns"])
        return out

    def stop(self):
        self.srv.stop(self.cfg.resolved_run_dir())


# ------------------------------------------------------------------------------------------------


def ensure_model(model: str | None) -> Path:
    if model:
        return Path(model)
    from genline.paths import state_dir

    cached = state_dir() / "bench" / "ci_model"
    if (cached / "gate.json").is_file() and (cached / "export.json").is_file():
        return cached
    from genline.workflow import run_training

    res = run_training(None, "ci", cached, progress=False)
    if not res.gate_passed:
        raise SystemExit(f"benchmark model failed its gate: {res.gate_reasons}")
    return cached


def fmt(x, d=1):
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{d}f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", choices=["echo", "grpc-ort", "fastapi"])
    ap.add_argument("--port", type=int)
    ap.add_argument("--onnx")
    ap.add_argument("--model")
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="each cell is measured this many times, interleaved; median kept",
    )
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "serving.md"))
    ap.add_argument("--report-from", help="re-render the report from a raw results pickle")
    args = ap.parse_args(argv)
    if args.report_from:
        write_report(args.out, *pickle.loads(Path(args.report_from).read_bytes()))
        return 0
    if args.serve == "echo":
        serve_echo(args.port)
        return 0
    if args.serve == "grpc-ort":
        serve_grpc_ort(args.port, args.onnx)
        return 0
    if args.serve == "fastapi":
        serve_fastapi(args.port, args.model)
        return 0

    import torch

    from genline.model import load_generator
    from genline.serving.config import CpuTuning

    model_dir = ensure_model(args.model)
    onnx_path = model_dir / contract.ONNX_FP32
    dur = args.duration
    t_start = time.time()

    def show(res):
        print(
            f"{res.name:>24} c={res.concurrency:<3} b={res.batch:<3} {res.rps:8.1f} req/s "
            f"{res.sps:8.1f} samples/s  p50 {res.pct(50):7.2f} ms  p99 {res.pct(99):7.2f} ms"
            f"  errors {res.errors}",
            flush=True,
        )
        return res

    work = Path(tempfile.mkdtemp(prefix="genline_bench_"))
    tb = TritonBench(model_dir, work)
    procs = []
    benches: list[TritonBench] = []
    try:
        # 1) Triton tuning sweep at concurrency 8: one server per candidate, all up at once,
        #    measured in interleaved rounds so external load hits every candidate alike
        base = CpuTuning()  # the committed config
        grid = [
            replace(base, ort_intra_op_threads=1),
            replace(base, ort_intra_op_threads=2),
            replace(base, ort_intra_op_threads=2, max_queue_delay_us=0),
            replace(base, ort_intra_op_threads=2, max_queue_delay_us=500),
            replace(base, ort_intra_op_threads=2, max_queue_delay_us=2000),
            replace(base, instances=2, ort_intra_op_threads=1),
            replace(base, instances=2, ort_intra_op_threads=1, max_queue_delay_us=500),
            replace(base, ort_intra_op_threads=2, ort_allow_spinning=True),
        ]
        candidates = [base] if args.no_sweep else [base] + [t for t in grid if t != base]
        for k, tuning in enumerate(candidates):
            bench = tb if k == 0 else TritonBench(model_dir, work / f"cand{k}")
            bench.start(tuning)
            benches.append(bench)
        sweep_runs: dict[int, list[tuple[Result, Result]]] = {k: [] for k in range(len(benches))}
        for rnd in range(args.rounds if len(benches) > 1 else 0):
            order = range(len(benches)) if rnd % 2 == 0 else reversed(range(len(benches)))
            for k in order:
                url = benches[k].cfg.grpc_url
                r1 = show(run_load(f"sweep {k}", triton_call(url, 1), 8, 1, dur))
                r32 = show(run_load(f"sweep {k}", triton_call(url, 32), 8, 32, dur))
                sweep_runs[k].append((r1, r32))
        sweep_rows = []
        best_k, best_score = 0, -1.0
        for k, runs_k in sweep_runs.items():
            if not runs_k:
                continue
            r1 = sorted((r for r, _ in runs_k), key=lambda r: r.rps)[len(runs_k) // 2]
            r32 = sorted((r for _, r in runs_k), key=lambda r: r.rps)[len(runs_k) // 2]
            score = float(np.sqrt(r1.sps * r32.sps))  # both request sizes count
            sweep_rows.append((candidates[k], r1, r32, score))
            if score > best_score:
                best_k, best_score = k, score
        best = candidates[best_k]
        # the table measures what ships (the committed config, candidate 0); the sweep shows
        # whether another setting would be better
        for k, bench in enumerate(benches):
            if k != 0:
                bench.stop()
        tb = benches[0]
        first_ms = tb.first_request_ms()
        print(f"first request after a restart: {first_ms[0]:.2f} ms, second {first_ms[1]:.2f} ms")

        # 2) every system up at once; cells measured in interleaved rounds
        echo, echo_port = spawn("echo")
        procs.append(echo)
        gort, gort_port = spawn("grpc-ort", "--onnx", str(onnx_path))
        procs.append(gort)
        fapi, fapi_port = spawn("fastapi", "--model", str(model_dir))
        procs.append(fapi)
        sess = _ort_session(onnx_path)
        torch.set_num_threads(1)
        tmodel, _ = load_generator(model_dir / "checkpoint.pt")
        tmodel.eval()
        cells = []
        for b in (1, 32):
            for c in (1, 8):
                cells.append((("ort", c, b), "in-process ORT", ort_call(sess, b)))
                cells.append((("torch", c, b), "in-process torch", torch_call(tmodel, b)))
                cells.append((("fastapi", c, b), "FastAPI + torch", fastapi_call(fapi_port, b)))
                cells.append(
                    (
                        ("grpc_ort", c, b),
                        "grpcio + ORT",
                        raw_grpc_call(gort_port, "/bench.Gen/Call", gen_payload(b)),
                    )
                )
            for c in (1, 8, 32):
                cells.append(
                    (
                        ("echo", c, b),
                        "grpcio echo",
                        raw_grpc_call(echo_port, "/bench.Echo/Call", echo_payload(b)),
                    )
                )
                cells.append(
                    (("triton", c, b), "Triton gRPC (genline)", triton_call(tb.cfg.grpc_url, b))
                )
        runs: dict[tuple, list[Result]] = {}
        tstats_runs: dict[tuple, list[dict]] = {}
        for rnd in range(args.rounds):
            order = cells if rnd % 2 == 0 else list(reversed(cells))
            for key, name, make in order:
                before = tb.stats() if key[0] == "triton" else None
                res = show(run_load(name, make, key[1], key[2], dur))
                runs.setdefault(key, []).append(res)
                if before is not None:
                    after = tb.stats()
                    tstats_runs.setdefault(key[1:], []).append(
                        {k: after[k] - before[k] for k in after}
                    )
        results = {}
        triton_stats = {}
        for key, rs in runs.items():
            idx = int(np.argsort([r.rps for r in rs])[len(rs) // 2])  # the median run
            results[key] = rs[idx]
            if key[0] == "triton":
                triton_stats[key[1:]] = tstats_runs[key[1:]][idx]
    finally:
        for p in procs:
            kill(p)
        for bench in {id(b): b for b in [tb, *benches]}.values():
            bench.stop()
        shutil.rmtree(work, ignore_errors=True)

    raw = (
        results,
        sweep_rows,
        best,
        triton_stats,
        model_dir,
        dur,
        time.time() - t_start,
        args.rounds,
        first_ms,
    )
    raw_path = Path(tempfile.gettempdir()) / "genline_serving_bench.pkl"
    raw_path.write_bytes(pickle.dumps(raw))
    print(f"raw results: {raw_path} (re-render with --report-from)")
    write_report(args.out, *raw)
    return 0


def write_report(out, R, sweep_rows, best, tstats, model_dir, dur, wall, rounds, first_ms):
    def g(k):
        return R.get(k)

    lines = ["## Serving (Triton vs the alternatives)", ""]
    lines.append(
        f"Measured by `benchmarks/serving.py` in one run on {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()}), shared by the load generator, the "
        f"server and, on this machine, other work; {dur:.0f} s per cell after 0.5 s warmup, "
        f"each cell measured {rounds} times in interleaved rounds (all servers up), the median "
        f"run kept; closed loop, one Python thread (own client) per concurrent request. "
        f"Model: the "
        f"`ci` preset generator (`{model_dir.name}`; 10-step flow-matching sampler as one ONNX "
        f"graph). Total wall time {wall:.0f} s."
    )
    lines += [
        "",
        "| system | conc. | batch | req/s | samples/s | p50 ms | p99 ms | p99/p50 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    order = [
        ("ort", "in-process ONNX Runtime (limit)"),
        ("torch", "in-process torch eager"),
        ("echo", "bare grpcio echo (transport floor)"),
        ("triton", "**Triton gRPC, genline config**"),
        ("fastapi", "FastAPI + torch"),
        ("grpc_ort", "grpcio + ONNX Runtime"),
    ]
    for key, label in order:
        for b in (1, 32):
            for c in (1, 8, 32):
                r = g((key, c, b))
                if r is None:
                    continue
                lines.append(
                    f"| {label} | {c} | {b} | {fmt(r.rps)} | {fmt(r.sps)} | "
                    f"{fmt(r.pct(50), 2)} | {fmt(r.pct(99), 2)} | "
                    f"{fmt(r.pct(99) / r.pct(50), 2)} |"
                )

    def eff(b):
        t, o, e = g(("triton", 8, b)), g(("ort", 8, b)), g(("echo", 8, b))
        return t.sps / min(o.sps, e.sps)

    t1, e1, o1 = g(("triton", 1, 1)), g(("echo", 1, 1)), g(("ort", 1, 1))
    p50_ratio = t1.pct(50) / (e1.pct(50) + o1.pct(50))
    t8 = g(("triton", 8, 1))
    vs_fastapi = t8.rps / g(("fastapi", 8, 1)).rps
    vs_grpc_ort = t8.rps / g(("grpc_ort", 8, 1)).rps
    tail = max(g(("triton", 8, b)).pct(99) / g(("triton", 8, b)).pct(50) for b in (1, 32))
    targets = [
        ("serving efficiency, c=8, single samples", "&ge; 0.6", eff(1), eff(1) >= 0.6),
        ("serving efficiency, c=8, client batches of 32", "&ge; 0.6", eff(32), eff(32) >= 0.6),
        ("p50 at c=1 / (echo p50 + ORT p50)", "&le; 1.5", p50_ratio, p50_ratio <= 1.5),
        ("c=8 single: Triton / FastAPI + torch", "&ge; 3", vs_fastapi, vs_fastapi >= 3),
        ("c=8 single: Triton / grpcio + ORT", "&ge; 1.2", vs_grpc_ort, vs_grpc_ort >= 1.2),
        ("p99/p50 at c=8 (worst of both batch sizes)", "&le; 3", tail, tail <= 3),
    ]
    lines += [
        "",
        "Targets (efficiency = Triton throughput / min(in-process ORT, grpcio echo) at "
        "the same concurrency and batch):",
        "",
        "| target | goal | measured | met |",
        "|---|---|---:|---|",
    ]
    for name, goal, val, ok in targets:
        lines.append(f"| {name} | {goal} | {val:.2f} | {'yes' if ok else '**no**'} |")
    committed = sweep_rows[0][0] if sweep_rows else best
    lines += [
        "",
        "Tuning sweep at concurrency 8. The table above measures the committed config "
        f"(`{committed}`, first row); best score here (geometric mean of b1 and b32 "
        f"throughput): `{best}`. Each candidate ran as its own server, all up at once, measured "
        "in the same interleaved rounds.",
        "",
        "| instances | delay us | ORT threads | spinning | c8 b1 req/s | c8 b1 p50 ms | "
        "c8 b1 p99 ms | c8 b32 samples/s | b1 vs committed | b32 vs committed |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    ref1, ref32 = (sweep_rows[0][1], sweep_rows[0][2]) if sweep_rows else (None, None)
    for tuning, r1, r32, _ in sweep_rows:
        lines.append(
            f"| {tuning.instances} | {tuning.max_queue_delay_us} | "
            f"{tuning.ort_intra_op_threads} | {tuning.ort_allow_spinning} | "
            f"{fmt(r1.rps)} | {fmt(r1.pct(50), 2)} | {fmt(r1.pct(99), 2)} | "
            f"{fmt(r32.sps)} | {r1.rps / ref1.rps:.2f}x | {r32.sps / ref32.sps:.2f}x |"
        )
    per1, per32 = o1.pct(50), g(("ort", 1, 32)).pct(50) / 32
    notes = []
    for tuning, r1, r32, _ in sweep_rows[1:]:
        diff = [
            f"{k}={getattr(tuning, k)}"
            for k in (
                "instances",
                "max_queue_delay_us",
                "ort_intra_op_threads",
                "ort_allow_spinning",
            )
            if getattr(tuning, k) != getattr(sweep_rows[0][0], k)
        ]
        notes.append(f"{', '.join(diff)}: {r1.rps / ref1.rps:.2f}x / {r32.sps / ref32.sps:.2f}x")
    sweep_note = "; ".join(notes) or "no sweep"
    avg8 = tstats[(8, 1)]["inferences"] / max(1, tstats[(8, 1)]["executions"])
    echo_tail = g(("echo", 8, 1)).pct(99) / g(("echo", 8, 1)).pct(50)
    lines += [
        "",
        "What moved the numbers:",
        "",
        f"- Per-sample compute falls with batch size: in-process ORT needs {per1:.2f} ms for "
        f"one sample and {per32:.2f} ms per sample in a batch of 32 ({per1 / per32:.1f}x "
        f"cheaper). Dynamic batching turns 8 concurrent single-sample clients into batches of "
        f"{avg8:.1f} on average, which is why Triton beats the per-request servers (grpcio + "
        "ORT, FastAPI + torch) and even per-request in-process ORT at concurrency 8.",
        f"- Sweep, this run (ratios vs the committed config at c8, b1 / b32): {sweep_note}. "
        "Repeated runs of this sweep on this shared 2-core machine ranked intra-op threads, "
        "instances and queue delay differently from run to run (docs/serving.md lists them); "
        "only the spinning penalty was consistent. Mechanisms: one batch executes at a time "
        "per instance, so a second intra-op thread lets a batch use both cores, while a second "
        "instance runs two smaller batches at once; the queue delay matters little because "
        "requests queue behind the running batch anyway (the model is compute-bound); spinning "
        "burns the core the client and the gRPC frontend need.",
        "- Transport is not the bound for this model: the grpcio echo moves the same bytes "
        "an order of magnitude faster than the model computes them.",
        f"- Tail: p99/p50 of the bare grpcio echo at concurrency 8 was {echo_tail:.1f} in this "
        "run (the load generator, the servers and other jobs share 2 cores: scheduling noise "
        "is part of every tail here); a single-instance batcher adds up to one batch of "
        "waiting on top (a request that just misses a batch waits for it to finish).",
        f"- First request 3 s after a (re)start, from a fresh client: {first_ms[0]:.1f} ms, the "
        f"next {first_ms[1]:.1f} ms (ORT warms up at batch 1, 8 and 64 in the model's "
        "initialize, and Triton's model_warmup sends one request marked with the optional "
        f"`{contract.WARMUP_INPUT}` input, which the prediction log skips; without the latter "
        "the first request took 50-100 ms).",
        "- Prediction logging is on in every Triton figure here (spool write per request, "
        "compaction in a watcher process).",
    ]
    lines += [
        "",
        "Triton's own statistics for the table's runs (average dynamic batch = "
        "inferences / executions; queue and compute per request):",
        "",
        "| conc. | batch | avg batch executed | queue us/req | compute us/req |",
        "|---:|---:|---:|---:|---:|",
    ]
    for (c, b), s in sorted(tstats.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        n = max(1, s["count"])
        lines.append(
            f"| {c} | {b} | {s['inferences'] / max(1, s['executions']):.1f} | "
            f"{s['queue_ns'] / n / 1e3:.0f} | {s['compute_ns'] / n / 1e3:.0f} |"
        )
    lines += [
        "",
        "GPU path (onnxruntime backend + TensorRT FP16, `configs/gpu.pbtxt`): "
        "**unverified** -- no GPU was available; its config is generated and checked "
        "against the ONNX graph on CPU only.",
        "",
    ]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    raise SystemExit(main())
