"""A real Alertmanager (Debian's prometheus-alertmanager) on a free loopback port.

The config is written here: one route to a receiver with no integrations (nothing leaves the
machine), clustering off. `start(tmp)` returns the process and its base URL once /-/ready
answers; the caller stops it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from genline.netutil import free_port

BINARIES = ("prometheus-alertmanager", "alertmanager")
INSTALL_HINT = (
    "Alertmanager is not installed: `sudo apt-get install -y prometheus-alertmanager` "
    "(Debian/Ubuntu; .ci/system-deps.sh does this in CI)"
)
CONFIG = """\
route:
  receiver: blackhole
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: blackhole
"""


def binary() -> str | None:
    for name in BINARIES:
        if path := shutil.which(name):
            return path
    return None


def start(tmp: Path, timeout_s: float = 30.0) -> tuple[subprocess.Popen, str]:
    exe = binary()
    if exe is None:
        raise RuntimeError(INSTALL_HINT)
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "alertmanager.yml").write_text(CONFIG)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp / "alertmanager.log", "wb")
    proc = subprocess.Popen(
        [
            exe,
            f"--config.file={tmp / 'alertmanager.yml'}",
            f"--storage.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"alertmanager exited {proc.returncode}: see {tmp}/alertmanager.log")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
                if resp.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"alertmanager not ready after {timeout_s} s: see {tmp}/alertmanager.log")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def alerts(url: str, **params: str) -> list[dict]:
    """GET /api/v2/alerts (query parameters as given, e.g. active="false")."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    with urllib.request.urlopen(f"{url}/api/v2/alerts?{query}", timeout=5) as resp:
        return json.loads(resp.read())
