"""`genline serve`: clean shutdown on signals, clear errors, no collision on a second start."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genline.procutil import pid_alive
from genline.serving import server as srv

pytestmark = pytest.mark.integration

GENLINE = str(Path(sys.executable).parent / "genline")


def cli_args(served) -> list[str]:
    c = served.cfg
    return [
        "--repository",
        str(c.repository),
        "--grpc-port",
        str(c.grpc_port),
        "--http-port",
        str(c.http_port),
        "--metrics-port",
        str(c.metrics_port),
        "--predlog-dir",
        str(c.predlog_dir),
    ]


def env_for(served) -> dict[str, str]:
    return {**os.environ, "GENLINE_HOME": str(served.home)}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_foreground_serve_stops_cleanly_on_signal(sig, tmp_path, served_factory):
    served = served_factory(tmp_path)
    proc = subprocess.Popen(
        [GENLINE, "serve", *cli_args(served)],
        env=env_for(served),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not srv.is_ready(served.cfg):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.2)
        info = srv.read_pidfile(served.home / "run")
        assert info is not None
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        srv.stop(served.home / "run", timeout_s=10)  # never leave a server behind
    assert proc.returncode == 0, err
    assert not pid_alive(int(info["pid"]))
    assert srv.read_pidfile(served.home / "run") is None
    assert not srv.port_in_use("127.0.0.1", served.cfg.grpc_port)


def test_background_start_is_reused_status_and_stop(tmp_path, served_factory):
    served = served_factory(tmp_path)
    env = env_for(served)
    first = subprocess.run(
        [GENLINE, "serve", "--background", *cli_args(served)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert first.returncode == 0, first.stderr
    try:
        pid = srv.read_pidfile(served.home / "run")["pid"]
        second = subprocess.run(
            [GENLINE, "serve", "--background", *cli_args(served)],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert second.returncode == 0, second.stderr
        assert srv.read_pidfile(served.home / "run")["pid"] == pid  # reused, no collision
        status = subprocess.run(
            [GENLINE, "serve", "--status", *cli_args(served)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        st = json.loads(status.stdout)
        assert status.returncode == 0 and st["ready"] and st["pid"] == pid
        assert st["loaded_versions"] == []  # nothing published in this repository
    finally:
        stop = subprocess.run(
            [GENLINE, "serve", "--stop", *cli_args(served)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert stop.returncode == 0 and f"pid {pid}" in stop.stdout
    assert not pid_alive(int(pid))
    again = subprocess.run(
        [GENLINE, "serve", "--status", *cli_args(served)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 1


def test_taken_port_is_a_clear_error(tmp_path, served_factory):
    served = served_factory(tmp_path)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", served.cfg.grpc_port))
        blocker.listen()
        res = subprocess.run(
            [GENLINE, "serve", "--background", *cli_args(served)],
            env=env_for(served),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert res.returncode != 0
    assert f"gRPC port {served.cfg.grpc_port}" in res.stderr and "already in use" in res.stderr


def test_invalid_repository_is_a_clear_error(tmp_path, served_factory):
    served = served_factory(tmp_path)
    cfg_path = served.repo / "genline_generator" / "config.pbtxt"
    cfg_path.write_text("name: [broken\n")
    res = subprocess.run(
        [GENLINE, "serve", "--background", *cli_args(served)],
        env=env_for(served),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode != 0 and "not a valid Triton model config" in res.stderr
    res = subprocess.run(
        [GENLINE, "serve", "--background", "--repository", str(tmp_path / "missing")],
        env=env_for(served),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode != 0 and "does not exist" in res.stderr


def test_missing_binary_is_a_clear_error(monkeypatch):
    import pytriton

    monkeypatch.setattr(pytriton, "__file__", "/nonexistent/pytriton/__init__.py")
    with pytest.raises(srv.ServerError, match="tritonserver binary missing"):
        srv.find_triton()
