"""The running Triton as a process: its pid-file record, whether it is alive, how it is ended,
and what its log says when it died.

`genline.serving.server` starts servers and writes the record; everything that later asks "is the
server of this state dir running, on which ports, and how do I stop it" reads it here.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from genline.fsutil import read_json
from genline.procutil import pid_alive

PIDFILE = "triton.json"


def is_tritonserver(pid: int) -> bool:
    """Whether `pid` runs the tritonserver binary, until the kernel has torn it down.

    The command name (/proc/PID/comm) stays while a killed server is still exiting (closing its
    sockets); its cmdline reads empty as soon as its memory is released, which made a dying
    server look gone and a restart find its ports still held.
    """
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as fh:
            return fh.read().strip() == "tritonserver"
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
    if pid > 0 and pid_alive(pid) and is_tritonserver(pid):
        return info
    (run_dir / PIDFILE).unlink(missing_ok=True)
    return None


def recorded_server(run_dir: Path | None = None) -> dict | None:
    """The pid-file record of the live Triton this state dir runs (run/triton.json), or None.

    Args:
        run_dir: default `genline.paths.run_dir()`.
    """
    from genline.paths import run_dir as default_run_dir

    return running_server(Path(run_dir) if run_dir is not None else default_run_dir())


def recorded_ports(info: dict | None) -> set[int]:
    """The ports the server recorded in a pid-file record listens on."""
    if not info:
        return set()
    conf = info.get("config") or {}
    return {int(conf[k]) for k in ("http_port", "grpc_port", "metrics_port") if k in conf}


def terminate(pid: int, timeout_s: float) -> bool:
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
    kill_group(pid)
    time.sleep(0.2)
    return not pid_alive(pid)


def kill_group(pid: int) -> None:
    """SIGKILL Triton's process group (it runs in its own session, with its backend stubs)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    keep = [ln for ln in text if not ln.startswith("I") or "error" in ln.lower()]
    return "\n".join(keep[-lines:])


def explain_failure(log: str) -> str:
    low = log.lower()
    if "address already in use" in low or "failed to start" in low and "port" in low:
        return "a port is already in use"
    if "load failed" in low or "failed to load" in low:
        return "the model failed to load (repository invalid or a version is broken)"
    if "poll failed" in low or "model_repository" in low and "error" in low:
        return "the model repository is invalid"
    return "tritonserver exited during startup"
