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
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from genline import contract
from genline.fsutil import atomic_write_json, read_json
from genline.netutil import free_port  # noqa: F401  (re-exported: callers use srv.free_port)
from genline.procutil import pid_alive
from genline.serving.admin import (  # noqa: F401  (admin_headers re-exported)
    ADMIN_HEADER,
    RESTRICTED_GRPC,
    RESTRICTED_HTTP,
    admin_headers,
    admin_token,
)
from genline.serving.install import (  # noqa: F401  (re-exported)
    ServerError,
    TritonInstall,
    find_triton,
    prepare_backend_dir,
)

PIDFILE = "triton.json"
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


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _recorded_ports(info: dict | None) -> set[int]:
    """The ports the server recorded in a pid-file record listens on."""
    if not info:
        return set()
    conf = info.get("config") or {}
    return {int(conf[k]) for k in ("http_port", "grpc_port", "metrics_port") if k in conf}


def check_ports_free(cfg: ServerConfig, existing: dict | None = None) -> None:
    """Refuse ports held by another process; those of `existing` (the server this run dir runs,
    about to be replaced) count as free.

    Raises:
        ServerError: naming the endpoint, the port and the option that chooses another.
    """
    ours = _recorded_ports(existing)
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


def recorded_server(run_dir: Path | None = None) -> dict | None:
    """The pid-file record of the live Triton this state dir runs (run/triton.json), or None.

    Args:
        run_dir: default `genline.paths.run_dir()`.
    """
    from genline.paths import run_dir as default_run_dir

    return running_server(Path(run_dir) if run_dir is not None else default_run_dir())


def default_grpc_url(run_dir: Path | None = None) -> str:
    """The gRPC URL of the server recorded in this state dir, else ServerConfig()'s."""
    info = recorded_server(run_dir)
    if info and info.get("grpc"):
        return str(info["grpc"])
    return ServerConfig().grpc_url


def build_command(
    cfg: ServerConfig, install: TritonInstall, backend_dir: Path, token: str, load_model: bool
) -> list[str]:
    repo = Path(cfg.repository).resolve()
    shm_prefix = f"genline{os.getpid()}x{secrets.token_hex(3)}"
    cmd = [
        str(install.binary),
        f"--model-repository={repo}",
        f"--backend-directory={backend_dir}",
        "--model-control-mode=explicit",
        "--disable-auto-complete-config",
        "--strict-readiness=false",  # a rejected version must not unready a serving pod
        f"--exit-timeout-secs={cfg.exit_timeout_s}",
        f"--http-address={cfg.host}",
        f"--http-port={cfg.http_port}",
        f"--grpc-address={cfg.host}",
        f"--grpc-port={cfg.grpc_port}",
        "--allow-metrics=true",
        "--allow-gpu-metrics=false",
        f"--metrics-address={cfg.host}",
        f"--metrics-port={cfg.metrics_port}",
        f"--grpc-restricted-protocol={RESTRICTED_GRPC}:{ADMIN_HEADER}={token}",
        f"--http-restricted-api={RESTRICTED_HTTP}:{ADMIN_HEADER}={token}",
        f"--backend-config=python,shm-region-prefix-name={shm_prefix}",
        f"--log-verbose={cfg.log_verbose}",
    ]
    if cfg.model_config_name:
        cmd.append(f"--model-config-name={cfg.model_config_name}")
    if load_model:
        cmd.append(f"--load-model={cfg.model}")
    cmd.extend(cfg.extra_args)
    return cmd


def server_env(install: TritonInstall, cfg: ServerConfig) -> dict[str, str]:
    from genline.serving import spool

    env = os.environ.copy()
    libs = str(install.libs)
    env["LD_LIBRARY_PATH"] = (
        f"{env['LD_LIBRARY_PATH']}:{libs}" if env.get("LD_LIBRARY_PATH") else libs
    )
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env[spool.DIR_ENV] = str(cfg.resolved_predlog_dir())
    env.pop("PYTHONPATH", None)  # ignored by the stub anyway; avoid surprises in helpers
    return env


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


def _is_tritonserver(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"tritonserver" in fh.read().split(b"\0")[0]
    except OSError:
        return False


def read_pidfile(run_dir: Path) -> dict | None:
    path = run_dir / PIDFILE
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def running_server(run_dir: Path) -> dict | None:
    """The pid-file record of a live Triton started from `run_dir`, else None (stale removed)."""
    info = read_pidfile(run_dir)
    if info is None:
        return None
    pid = int(info.get("pid", -1))
    if pid > 0 and pid_alive(pid) and _is_tritonserver(pid):
        return info
    (run_dir / PIDFILE).unlink(missing_ok=True)
    return None


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    keep = [ln for ln in text if not ln.startswith("I") or "error" in ln.lower()]
    return "\n".join(keep[-lines:])


def _explain_failure(log: str) -> str:
    low = log.lower()
    if "address already in use" in low or "failed to start" in low and "port" in low:
        return "a port is already in use"
    if "load failed" in low or "failed to load" in low:
        return "the model failed to load (repository invalid or a version is broken)"
    if "poll failed" in low or "model_repository" in low and "error" in low:
        return "the model repository is invalid"
    return "tritonserver exited during startup"


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
            tail = _log_tail(log)
            raise ServerError(
                f"{_explain_failure(tail)} (exit {proc.returncode}); log {log}:\n{tail}"
            )
        if is_ready(cfg):
            return ServerHandle(pid=proc.pid, config=cfg, log=log, process=proc)
        time.sleep(0.2)
    _terminate(proc.pid, 10)
    (run_dir / PIDFILE).unlink(missing_ok=True)
    raise ServerError(
        f"Triton did not become ready within {wait_s:.0f} s; log {log}:\n{_log_tail(log)}"
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


def _terminate(pid: int, timeout_s: float) -> bool:
    """SIGTERM, wait, then SIGKILL. Returns True if the process is gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return True
        except ChildProcessError:
            pass
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    _kill_group(pid)
    time.sleep(0.2)
    return not pid_alive(pid)


def _kill_group(pid: int) -> None:
    """SIGKILL Triton's process group (it runs in its own session, with its backend stubs)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


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
    _terminate(int(info["pid"]), timeout_s)
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
                _kill_group(handle.pid)  # past its exit timeout Triton may hang instead of exiting
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
