"""The outbox across processes: concurrent senders, and a sender killed before delivery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from receiver_fixture import Receiver

from genline.alerting import AlertingConfig, Router
from genline.alerting.outbox import Outbox
from genline.alerts import read_alerts

PD_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"
ROOT = Path(__file__).resolve().parents[3]

SENDER = """
import sys
from genline.alerts import send_alert
worker, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    send_alert("test.sender", f"worker {worker} alert {i}", severity="critical",
               subject=f"{worker}-{i}", sink_dir=sys.argv[3])
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENLINE_KILL")}
    return {**env, "GENLINE_NOW": "2026-11-15T08:00:00Z", **extra}


def test_concurrent_sender_processes_do_not_corrupt_the_outbox(tmp_path):
    workers, per_worker = 4, 15
    with Receiver("pagerduty") as pd:
        env = _env(GENLINE_PAGERDUTY_ROUTING_KEY=PD_KEY, GENLINE_PAGERDUTY_URL=pd.url)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", SENDER, str(w), str(per_worker), str(tmp_path)],
                env=env,
                cwd=ROOT,
            )
            for w in range(workers)
        ]
        assert [p.wait(timeout=240) for p in procs] == [0] * workers
        # whatever a sender left behind (another held the delivery lock) goes out now
        cfg = AlertingConfig(pagerduty_url=pd.url)
        os.environ["GENLINE_PAGERDUTY_ROUTING_KEY"] = PD_KEY
        try:
            Router(tmp_path, cfg).flush()
        finally:
            del os.environ["GENLINE_PAGERDUTY_ROUTING_KEY"]
    total = workers * per_worker
    records = read_alerts(tmp_path)
    assert len(records) == total
    assert sorted(r["seq"] for r in records) == list(range(1, total + 1))  # no seq twice
    assert len({r["summary"] for r in records}) == total
    keys = [b["dedup_key"] for b in pd.accepted]
    assert len(keys) == total and len(set(keys)) == total  # each exactly once
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["seq"] == total and len(state["incidents"]) == total
    assert Outbox(tmp_path).pending() == []


def test_a_sender_killed_after_the_outbox_write_delivers_on_the_next_flush(tmp_path):
    env = _env(GENLINE_KILL_AT="alerting.after_outbox_write")
    proc = subprocess.run(
        [sys.executable, "-c", SENDER, "k", "1", str(tmp_path)], env=env, cwd=ROOT
    )
    assert proc.returncode == -9  # SIGKILL: no finally, no atexit
    assert read_alerts(tmp_path) == []  # nothing delivered
    (event,) = Outbox(tmp_path).pending()
    assert event.alert.summary == "worker k alert 0"
    genline = [sys.executable, "-m", "genline", "alerts", "flush", "--dir", str(tmp_path)]
    out = subprocess.run(genline, env=_env(), cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "file: delivered 1" in out.stdout and "pending: 0" in out.stdout
    again = subprocess.run(genline, env=_env(), cwd=ROOT, capture_output=True, text=True)
    assert "pending: 0" in again.stdout
    (record,) = read_alerts(tmp_path)  # once, not twice
    assert record["summary"] == "worker k alert 0" and record["action"] == "trigger"


def test_the_next_send_also_delivers_what_a_killed_sender_left(tmp_path):
    env = _env(GENLINE_KILL_AT="alerting.after_outbox_write")
    subprocess.run([sys.executable, "-c", SENDER, "k", "1", str(tmp_path)], env=env, cwd=ROOT)
    subprocess.run([sys.executable, "-c", SENDER, "n", "1", str(tmp_path)], env=_env(), cwd=ROOT)
    assert [r["summary"] for r in read_alerts(tmp_path)] == [
        "worker k alert 0",
        "worker n alert 0",
    ]
