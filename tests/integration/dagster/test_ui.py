"""`genline ui --background` serves the asset graph (partitions, checks) and `--stop` ends it."""

import json
import os
import socket
import subprocess
import sys
import urllib.request

import pytest

from .conftest import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUERY = """{ assetNodes { assetKey { path } isPartitioned
  assetChecksOrError { ... on AssetChecks { checks { name blocking } } } } }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_serves_the_asset_graph_and_stops(tmp_path):
    env = dict(os.environ, GENLINE_HOME=str(tmp_path / "state"))
    env.pop("DAGSTER_HOME", None)  # the UI's own persistent home under the state dir
    port = _free_port()
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
        assert len(checks) == 10 and all(c["blocking"] for c in checks)
        assert not by_key["training_dataset"]["isPartitioned"]
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
