"""`genline ui --background` serves the asset graph (partitions, checks) and `--stop` ends it."""

import ipaddress
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from genline.netutil import free_port

from .conftest import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUERY = """{ assetNodes { assetKey { path } isPartitioned
  assetChecksOrError { ... on AssetChecks { checks { name blocking } } } } }"""


def _listening_addresses(session: int) -> list[tuple[ipaddress._BaseAddress, int]]:
    """(address, port) of every listening TCP socket held by a process of `session`
    (`dagster dev` and its webserver, daemon and code server), read from /proc."""
    inodes = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.getsid(int(proc.name)) != session:
                continue
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except (OSError, ProcessLookupError):
            continue
    out = []
    for table, width in (("tcp", 4), ("tcp6", 16)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            hex_ip, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_ip)
            # /proc stores the address as host-order 32-bit words
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, width, 4))
            out.append((ipaddress.ip_address(raw), int(hex_port, 16)))
    return out


def test_ui_refuses_a_non_loopback_host_without_the_flag(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from genline.cli import cli

    monkeypatch.setenv("GENLINE_HOME", str(tmp_path / "state"))
    out = CliRunner().invoke(cli, ["ui", "--host", "0.0.0.0", "--background"])
    assert out.exit_code == 2 and "not a loopback address" in out.output
    assert "--allow-remote" in out.output
    assert not (tmp_path / "state" / "run" / "dagster.pid").exists()  # nothing was started


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("::1", True),
                         ("localhost", True), ("0.0.0.0", False), ("10.1.2.3", False),
                         ("example.org", False)])
def test_is_loopback(host, loopback):
    from genline.cli.ui_cmds import is_loopback

    assert is_loopback(host) is loopback


def test_ui_serves_the_asset_graph_and_stops(tmp_path):
    env = dict(os.environ, GENLINE_HOME=str(tmp_path / "state"))
    env.pop("DAGSTER_HOME", None)  # the UI's own persistent home under the state dir
    port = free_port()
    genline = [sys.executable, "-m", "genline.cli"]
    start = subprocess.run(
        [*genline, "ui", "--background", "--port", str(port)],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    pid_file = tmp_path / "state" / "run" / "dagster.pid"
    try:
        assert start.returncode == 0, start.stderr
        assert pid_file.is_file()
        assert (tmp_path / "state" / "dagster_home" / "dagster.yaml").is_file()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/graphql",
            data=json.dumps({"query": QUERY}).encode(),
            headers={"Content-Type": "application/json"},
        )
        nodes = json.load(urllib.request.urlopen(req, timeout=60))["data"]["assetNodes"]
        by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
        assert by_key["incoming_batch"]["isPartitioned"]
        checks = by_key["incoming_batch"]["assetChecksOrError"]["checks"]
        from genline.validation import ADVISORY_CHECKS

        advisory = {"batch_matches_training_data", *ADVISORY_CHECKS}
        assert len(checks) == 12
        assert all(c["blocking"] == (c["name"] not in advisory) for c in checks), checks
        assert not by_key["training_dataset"]["isPartitioned"]
        pid = int(pid_file.read_text().split()[0])
        listening = _listening_addresses(pid)
        assert any(port == p for _, p in listening), listening  # the webserver, seen for real
        assert listening and all(ip.is_loopback for ip, _ in listening), listening
    finally:
        stop = subprocess.run(
            [*genline, "ui", "--stop"],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert stop.returncode == 0 and "stopped" in stop.stdout
    assert not pid_file.exists()
    from genline.procutil import pid_alive

    assert not pid_alive(int(start.stdout.split("pid ")[1].split(",")[0]))
