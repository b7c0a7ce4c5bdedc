"""The server this state dir runs: found through run/triton.json, never stopped for a bad start.

`genline serve --status`, `publish`, `generate` (and `rollback`) use the recorded server's
address when none is given; `serve --background` on a port another process holds refuses
before it stops the running server.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from genline.serving import server as srv

pytestmark = pytest.mark.integration

GENLINE = str(Path(sys.executable).parent / "genline")


def ports_of(served) -> list[str]:
    c = served.cfg
    return [
        "--grpc-port",
        str(c.grpc_port),
        "--http-port",
        str(c.http_port),
        "--metrics-port",
        str(c.metrics_port),
        "--predlog-dir",
        str(c.predlog_dir),
    ]


def genline(served, *args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [GENLINE, *args],
        env={**os.environ, "GENLINE_HOME": str(served.home)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_recorded_server_is_used_and_kept(tmp_path, served_factory, model_dir):
    served = served_factory(tmp_path)
    repo = ["--repository", str(served.repo)]
    started = genline(served, "serve", "--background", *repo, *ports_of(served))
    assert started.returncode == 0, started.stderr
    try:
        pid = srv.read_pidfile(served.home / "run")["pid"]
        # --status without ports: the recorded server, not 127.0.0.1:8001
        status = genline(served, "serve", "--status", *repo, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        st = json.loads(status.stdout)
        assert st["ready"] and st["pid"] == pid and st["grpc"] == served.cfg.grpc_url
        assert srv.default_grpc_url(served.home / "run") == served.cfg.grpc_url

        # another process holds the HTTP port asked for: refused, the running server untouched
        with socket.socket() as blocker:
            blocker.bind(("127.0.0.1", 0))
            blocker.listen()
            held = blocker.getsockname()[1]
            other = [*ports_of(served)]
            other[other.index("--http-port") + 1] = str(held)
            res = genline(served, "serve", "--background", *repo, *other)
        assert res.returncode != 0
        assert f"HTTP port {held} on 127.0.0.1 is already in use by another process" in res.stderr
        assert "--stop" not in res.stderr
        assert srv.read_pidfile(served.home / "run")["pid"] == pid
        assert srv.is_ready(served.cfg)
        # the same config again: reused, as before
        again = genline(served, "serve", "--background", *repo, *ports_of(served))
        assert again.returncode == 0 and srv.read_pidfile(served.home / "run")["pid"] == pid

        # publish and generate without --url reach the recorded server
        pub = genline(served, "publish", "--model", str(model_dir), *repo)
        assert pub.returncode == 0, pub.stderr
        assert "version 1 is serving" in pub.stdout
        out = tmp_path / "grid.png"
        gen = genline(served, "generate", "--label", "1", "-n", "2", "--out", str(out))
        assert gen.returncode == 0, gen.stderr
        assert out.is_file() and "model version 1" in gen.stdout
        # an explicit --url still wins
        wrong = genline(
            served,
            "generate",
            "--label",
            "1",
            "-n",
            "1",
            "--out",
            str(out),
            "--url",
            f"127.0.0.1:{srv.free_port()}",
            timeout=120,
        )
        assert wrong.returncode != 0
    finally:
        genline(served, "serve", "--stop", *repo, timeout=120)
    assert not srv.port_in_use("127.0.0.1", served.cfg.grpc_port)
