"""Start, stop and query a real Triton Inference Server (the binary inside nvidia-pytriton).

What the binary needs, and how it is given it:

- its shared libraries: `site-packages/nvidia_pytriton.libs` on LD_LIBRARY_PATH;
- a backend directory whose `python/` holds `libtriton_python.so`, `triton_python_backend_utils.py`
  and the stub built for this Python (`python_backend_stubs/3.11/`): assembled from symlinks under
  the run dir;
- the stub embeds CPython and ignores PYTHONPATH; it derives `sys.prefix` from the first `python3`
  on PATH, so the directory of `sys.executable` (the venv's bin/) goes first on PATH and the
  stub then sees the venv's site-packages, genline included (as pytriton itself does).

All three endpoints bind to loopback by default. The repository-control API (load/unload,
index) is additionally restricted to callers presenting the admin header, whose token lives in
the run dir (mode 0600), so it stays unreachable beyond loopback even if bound wider.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from genline import contract
from genline.fsutil import atomic_write_json
from genline.netutil import free_port, port_in_use  # noqa: F401  (re-exported: srv.free_port)
from genline.procutil import pid_alive
from genline.serving.admin import (  # noqa: F401  (admin_headers re-exported)
    ADMIN_HEADER,
    RESTRICTED_GRPC,
    RESTRICTED_HTTP,
    admin_headers,
    admin_token,
)
from genline.serving.command import build_command, server_env  # noqa: F401
from genline.serving.install import (  # noqa: F401  (re-exported)
    ServerError,
    TritonInstall,
    find_triton,
    prepare_backend_dir,
)
from genline.serving.process import (  # noqa: F401  (re-exported: callers use srv.*)
    PIDFILE,
    explain_failure,
    is_tritonserver,
    kill_group,
    log_tail,
    read_pidfile,
    recorded_ports,
    recorded_server,
    running_server,
    terminate,
)

# Beyond --exit-timeout-secs, how long stop() waits before SIGKILL: model unload (finalize seals
# the prediction-log spool) takes a few seconds after the last in-flight request. Triton 2.51 does
# not exit cleanly when the exit timeout expires with requests still running (it aborts and can
# hang in its crash handler), so this bound is what guarantees stop() returns.
STOP_GRACE_S = 15.0


@dataclass(frozen=True)
class ServerConfig:
    """How to run Triton. Paths default (at call time) to `triton_repo/` and the state dirs."""

    repository: Path = Path("triton_repo")
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    model: str = contract.MODEL_NAME
    run_dir: Path | None = None  # default genline.paths.run_dir()
    predlog_dir: Path | None = None  # default genline.serving.spool.default_dir()
    model_config_name: str | None = None  # e.g. "gpu" -> configs/gpu.pbtxt
    log_verbose: int = 0
    exit_timeout_s: int = 15
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    def resolved_run_dir(self) -> Path:
        from genline.paths import run_dir

        return Path(self.run_dir) if self.run_dir is not None else run_dir()

    def resolved_predlog_dir(self) -> Path:
        from genline.serving.spool import default_dir

        return Path(self.predlog_dir) if self.predlog_dir is not None else default_dir()

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"


def check_ports_free(cfg: ServerConfig, existing: dict | None = None) -> None:
    """Refuse ports held by another process; those of `existing` (the server this run dir runs,
    about to be replaced) count as free.

    Raises:
        ServerError: naming the endpoint, the port and the option that chooses another.
    """
    ours = recorded_ports(existing)
    for name, port in (
        ("HTTP", cfg.http_port),
        ("gRPC", cfg.grpc_port),
        ("metrics", cfg.metrics_port),
    ):
        if port not in ours and port_in_use(cfg.host, port):
            running = (
                f"; the Triton this state dir runs (pid {existing['pid']}) keeps serving"
                if existing
                else ""
            )
            raise ServerError(
                f"{name} port {port} on {cfg.host} is already in use by another process (not a "
                f"Triton started from this state dir): stop that process or choose another port "
                f"(--{name.lower()}-port){running}"
            )


def default_grpc_url(run_dir: Path | None = None) -> str:
    """The gRPC URL of the server recorded in this state dir, else ServerConfig()'s."""
    info = recorded_server(run_dir)
    if info and info.get("grpc"):
        return str(info["grpc"])
    return ServerConfig().grpc_url


def _http(
    url: str, timeout: float = 2.0, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url, method=method, headers=headers or {}, data=b"{}" if method == "POST" else None
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def is_ready(cfg: ServerConfig, timeout: float = 2.0) -> bool:
    return _http(f"{cfg.http_url}/v2/health/ready", timeout)[0] == 200


@dataclass
class ServerHandle:
    pid: int
    config: ServerConfig
    log: Path
    process: subprocess.Popen | None = None

    def describe(self) -> str:
        c = self.config
        return (
            f"Triton pid {self.pid}: gRPC {c.host}:{c.grpc_port}  HTTP {c.http_url}  "
            f"metrics http://{c.host}:{c.metrics_port}/metrics  (log {self.log})"
        )


def start(cfg: ServerConfig, *, wait_s: float = 180.0) -> ServerHandle:
    """Start Triton in the background (own session) and wait until `/v2/health/ready`.

    A live server recorded in the run dir with the same settings is reused; one with other
    settings is stopped first, so repeated `make demo` never collides with itself. The binary,
    the repository and the requested ports are checked before that: a port another process
    holds refuses the start and leaves the running server serving.

    Raises:
        ServerError: port taken, binary/libraries missing, invalid repository, failed load.
    """
    from genline.serving.repository import RepositoryError, check_repository, versions

    run_dir = cfg.resolved_run_dir()
    existing = running_server(run_dir)
    signature = _signature(cfg)
    if existing is not None and existing.get("signature") == signature and is_ready(cfg):
        return ServerHandle(pid=int(existing["pid"]), config=cfg, log=Path(existing["log"]))
    # everything that can refuse comes before the running server is stopped: a start that
    # cannot succeed must leave it serving
    install = find_triton()
    try:
        check_repository(cfg.repository, cfg.model)
    except RepositoryError as exc:
        raise ServerError(str(exc)) from exc
    check_ports_free(cfg, existing)
    if existing is not None:
        stop(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    from genline.serving import store

    store.compact(cfg.resolved_predlog_dir())  # what a killed server left in the spool
    backend_dir = prepare_backend_dir(install, run_dir)
    token = admin_token(run_dir, create=True)
    has_versions = bool(versions(cfg.repository, cfg.model))
    cmd = build_command(cfg, install, backend_dir, token, load_model=has_versions)
    log = run_dir / "triton.log"
    with open(log, "ab") as fh:
        fh.write(f"\n=== genline serve {time.strftime('%Y-%m-%dT%H:%M:%S')} ===\n".encode())
        fh.flush()
        proc = subprocess.Popen(
            cmd,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=server_env(install, cfg),
            start_new_session=True,
        )
    atomic_write_json(
        run_dir / PIDFILE,
        {
            "pid": proc.pid,
            "log": str(log),
            "signature": signature,
            "config": _jsonable(cfg),
            "grpc": cfg.grpc_url,
            "http": cfg.http_url,
            "metrics": f"http://{cfg.host}:{cfg.metrics_port}/metrics",
            "predlog_dir": str(cfg.resolved_predlog_dir()),
            "exit_timeout_s": cfg.exit_timeout_s,
            "started": time.time(),
        },
    )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            (run_dir / PIDFILE).unlink(missing_ok=True)
            tail = log_tail(log)
            raise ServerError(
                f"{explain_failure(tail)} (exit {proc.returncode}); log {log}:\n{tail}"
            )
        if is_ready(cfg):
            return ServerHandle(pid=proc.pid, config=cfg, log=log, process=proc)
        time.sleep(0.2)
    terminate(proc.pid, 10)
    (run_dir / PIDFILE).unlink(missing_ok=True)
    raise ServerError(
        f"Triton did not become ready within {wait_s:.0f} s; log {log}:\n{log_tail(log)}"
    )


def _jsonable(cfg: ServerConfig) -> dict:
    out = asdict(cfg)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in out.items()}


def _signature(cfg: ServerConfig) -> str:
    d = _jsonable(cfg)
    d["repository"] = str(Path(cfg.repository).resolve())
    d["predlog_dir"] = str(cfg.resolved_predlog_dir())
    d["run_dir"] = str(cfg.resolved_run_dir())
    return json.dumps(d, sort_keys=True)


def stop(run_dir: Path | None = None, timeout_s: float | None = None) -> dict | None:
    """Stop the Triton recorded in `run_dir`, then compact its prediction log.

    SIGTERM starts Triton's graceful shutdown: it stops taking new requests (UNAVAILABLE "Server
    exiting"), lets in-flight ones finish for up to `--exit-timeout-secs`, unloads the model
    (whose finalize seals the spool segment) and exits. After `timeout_s` the whole process group
    (server and backend stubs) is killed. Either way every record already written is in the
    spool, and it is compacted into Parquet before this returns.

    Args:
        run_dir: the run dir the server was started from (default `genline.paths.run_dir()`).
        timeout_s: seconds before SIGKILL; default the server's exit timeout + STOP_GRACE_S.

    Returns:
        The pid-file record of what was stopped (with `compacted`: compaction counts), or None
        when nothing was running.

    Raises:
        ServerError: the server stopped but its prediction log could not be compacted (nothing
            is lost: the spool keeps the records for the next compaction).
    """
    from genline.paths import run_dir as default_run_dir

    run_dir = Path(run_dir) if run_dir is not None else default_run_dir()
    info = running_server(run_dir)
    if info is None:
        return None
    if timeout_s is None:
        timeout_s = float(info.get("exit_timeout_s", ServerConfig.exit_timeout_s)) + STOP_GRACE_S
    terminate(int(info["pid"]), timeout_s)
    (run_dir / PIDFILE).unlink(missing_ok=True)
    if info.get("predlog_dir"):
        info["compacted"] = compact_predictions(Path(info["predlog_dir"]))
    return info


def compact_predictions(predlog_dir: Path) -> dict[str, int]:
    """Compact a stopped server's spool (sealed segments and those of dead writers) to Parquet.

    Raises:
        ServerError: naming the directory and the command that retries it.
    """
    from genline.serving import store

    try:
        return store.compact(predlog_dir, wait=True)
    except Exception as exc:
        raise ServerError(
            f"Triton stopped, but compacting the prediction log in {predlog_dir} failed: {exc!r}. "
            f"Nothing is lost (the spool keeps every record); retry with "
            f"`python -m genline.serving.store compact {predlog_dir}`"
        ) from exc


def run_foreground(cfg: ServerConfig) -> int:
    """`genline serve`: start, forward SIGINT/SIGTERM to Triton, wait, clean up; exit code."""
    state: dict = {"sig": None, "pid": None, "since": None}

    def forward(signum, _frame):
        state["sig"] = signum
        if state["since"] is None:
            state["since"] = time.monotonic()
        if state["pid"] is not None:
            try:
                os.kill(state["pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass

    # handlers first: a signal that arrives while Triton starts must still stop it
    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    handle = None
    try:
        handle = start(cfg)
        state["pid"] = handle.pid
        if state["sig"] is not None:
            forward(state["sig"], None)
        else:
            print(handle.describe(), flush=True)
        while pid_alive(handle.pid):
            if handle.process is not None and handle.process.poll() is not None:
                break
            since = state["since"]
            if since is not None and time.monotonic() - since > cfg.exit_timeout_s + STOP_GRACE_S:
                kill_group(handle.pid)  # past its exit timeout Triton may hang instead of exiting
            time.sleep(0.2)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if handle is not None and not pid_alive(handle.pid):
            (cfg.resolved_run_dir() / PIDFILE).unlink(missing_ok=True)
    if handle is not None and not pid_alive(handle.pid):
        compact_predictions(cfg.resolved_predlog_dir())  # what the last requests left in the spool
    code = handle.process.returncode if handle.process is not None else 0
    return 0 if state["sig"] is not None else (code or 0)


def status(cfg: ServerConfig) -> dict:
    """Readiness and the loaded versions, as a dict (what `genline serve --status` prints)."""
    run_dir = cfg.resolved_run_dir()
    info = running_server(run_dir)
    out: dict = {
        "pid": info.get("pid") if info else None,
        "grpc": cfg.grpc_url,
        "http": cfg.http_url,
        "live": _http(f"{cfg.http_url}/v2/health/live")[0] == 200,
        "ready": is_ready(cfg),
        "model": cfg.model,
        "loaded_versions": [],
        "model_ready": False,
    }
    code, body = _http(f"{cfg.http_url}/v2/models/{cfg.model}")
    if code == 200:
        meta = json.loads(body)
        out["loaded_versions"] = sorted(int(v) for v in meta.get("versions", []))
        out["model_ready"] = _http(f"{cfg.http_url}/v2/models/{cfg.model}/ready")[0] == 200
    headers = admin_headers(run_dir, protocol="http")
    code, body = _http(f"{cfg.http_url}/v2/repository/index", method="POST", headers=headers)
    if code == 200:
        out["repository_index"] = json.loads(body)
    return out
