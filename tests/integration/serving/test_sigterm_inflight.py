"""SIGTERM with requests in flight, against a real Triton stopped by `genline serve --stop`.

Measured on Triton 2.51: after SIGTERM the server answers new requests UNAVAILABLE ("Server
exiting"), lets in-flight and queued ones finish (up to --exit-timeout-secs), unloads the model
(finalize seals the spool) and exits; `genline serve --stop` then compacts the spool. The
backend's test hook holds each request inside execute() (GENLINE_TEST_EXECUTE_DELAY_S on at
start, `genline_test_delay_s` per request), and the test waits for the hook's line in the server
log, so the requests are known to be in flight when the signal goes out.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from genline import contract
from genline.client import NO_VERSIONS
from genline.procutil import pid_alive
from genline.serving import backend_model, spool, store
from genline.serving import server as srv
from genline.serving.publish import publish
from tests.integration.serving.test_cancel_deadline import wait_for_log_line

pytestmark = pytest.mark.integration

GENLINE = str(Path(sys.executable).parent / "genline")
IN_FLIGHT = 6
HOLD_S = 1.0


@pytest.fixture
def hooked_server(tmp_path, model_dir, served_factory, monkeypatch):
    served = served_factory(tmp_path)
    monkeypatch.setenv(backend_model.TEST_DELAY_ENV, "0")  # hook on, no pause by default
    srv.start(served.cfg)
    publish(model_dir, served.target)
    yield served
    srv.stop(served.cfg.resolved_run_dir(), timeout_s=10)  # never leave a server behind


def send(served, rid: str, hold_s: float, outcomes: dict) -> None:
    """One request with its own client and a generous deadline (a hang would end there)."""
    client = grpcclient.InferenceServerClient(served.cfg.grpc_url)
    z = np.random.default_rng(len(outcomes)).standard_normal((2, 64)).astype(np.float32)
    inputs = [
        grpcclient.InferInput(contract.INPUT_LABEL, [2, 1], "INT64"),
        grpcclient.InferInput(contract.INPUT_Z, [2, 64], "FP32"),
    ]
    inputs[0].set_data_from_numpy(np.array([[1], [2]], np.int64))
    inputs[1].set_data_from_numpy(z)
    try:
        res = client.infer(
            contract.MODEL_NAME,
            inputs,
            request_id=rid,
            client_timeout=90,
            parameters={backend_model.TEST_DELAY_PARAM: hold_s},
        )
        outcomes[rid] = ("OK", res.as_numpy(contract.OUTPUT_IMAGE).shape)
    except InferenceServerException as exc:
        outcomes[rid] = (str(exc.status()), exc.message())
    finally:
        client.close()


def test_sigterm_completes_in_flight_requests_and_logs_every_completed_one(hooked_server):
    served = hooked_server
    outcomes: dict = {}
    threads = [
        threading.Thread(target=send, args=(served, f"term-{k}", HOLD_S, outcomes))
        for k in range(IN_FLIGHT)
    ]
    for t in threads:
        t.start()
    wait_for_log_line(served, "pausing term-")  # at least one batch is inside execute()
    pid = int(srv.running_server(served.cfg.resolved_run_dir())["pid"])
    stopper = subprocess.Popen(
        [GENLINE, "serve", "--stop"],
        env={**os.environ, "GENLINE_HOME": str(served.home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    late = []
    while stopper.poll() is None and len(late) < 3:  # requests racing the shutdown
        rid = f"late-{len(late)}"
        late.append(threading.Thread(target=send, args=(served, rid, 0.0, outcomes)))
        late[-1].start()
        late[-1].join(30)
    out, err = stopper.communicate(timeout=120)
    assert stopper.returncode == 0, err
    for t in threads + late:
        t.join(30)
        assert not t.is_alive(), "a client hung through the shutdown"
    assert not pid_alive(pid)
    # every in-flight request completed; anything else failed with a clean status
    for k in range(IN_FLIGHT):
        assert outcomes[f"term-{k}"] == ("OK", (2, 1, 8, 8)), outcomes
    for rid, outcome in outcomes.items():
        # After SIGTERM: UNAVAILABLE "Server exiting" until the model unloads, then NOT_FOUND
        # "no available versions" until the endpoint closes, then connection refused.
        if outcome[0] == "StatusCode.NOT_FOUND":
            assert NO_VERSIONS in outcome[1], (rid, outcome)
        else:
            assert outcome[0] in ("OK", "StatusCode.UNAVAILABLE"), (rid, outcome)
    completed = {rid for rid, outcome in outcomes.items() if outcome[0] == "OK"}
    # ... and stop compacted the spool: the records are in Parquet, nothing left pending
    pdir = served.cfg.resolved_predlog_dir()
    assert spool.pending_segments(pdir) == []
    stored = store.read_predictions(pdir, compact_first=False, include_live=False)
    assert completed <= set(stored.request_id)
    mine = stored[stored.request_id.isin(completed)]
    assert set(mine.status) == {"OK"} and len(mine) == 2 * len(completed)


def test_a_request_past_the_exit_timeout_fails_cleanly_and_stop_returns(
    tmp_path, model_dir, served_factory, monkeypatch
):
    served = served_factory(tmp_path)
    served.cfg = dataclasses.replace(served.cfg, exit_timeout_s=1)
    monkeypatch.setenv(backend_model.TEST_DELAY_ENV, "0")
    srv.start(served.cfg)
    try:
        publish(model_dir, served.target)
        outcomes: dict = {}
        send(served, "before-stop", 0.0, outcomes)
        stuck = threading.Thread(target=send, args=(served, "past-exit", 60.0, outcomes))
        stuck.start()
        wait_for_log_line(served, "pausing past-exit")
        pid = int(srv.running_server(served.cfg.resolved_run_dir())["pid"])
        # default timeout: the recorded exit timeout (1 s) + STOP_GRACE_S, then SIGKILL
        info = srv.stop(served.cfg.resolved_run_dir())
        stuck.join(30)
    finally:
        srv.stop(served.cfg.resolved_run_dir(), timeout_s=10)
    assert not stuck.is_alive(), "the client hung after the server was killed"
    assert not pid_alive(pid)
    assert outcomes["before-stop"][0] == "OK"
    assert outcomes["past-exit"][0] == "StatusCode.UNAVAILABLE", outcomes
    # the killed stub's open segment is compacted by the time stop() returns: by stop itself or
    # by the stub's compaction watcher, which outlives its parent for one last pass (either may
    # win the compaction lock, so the count in info["compacted"] may be 0)
    assert "compacted" in info
    pdir = served.cfg.resolved_predlog_dir()
    assert spool.pending_segments(pdir) == []
    stored = store.read_predictions(pdir, compact_first=False, include_live=False)
    assert "before-stop" in set(stored.request_id)
    assert "past-exit" not in set(stored.request_id)  # it never completed: nothing to log
