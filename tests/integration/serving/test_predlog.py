"""Prediction logging against real Triton servers: plain-tritonclient traffic, failures, and no
loss across a graceful restart or a killed server."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from genline import contract
from genline.serving import server as srv
from genline.serving import store
from genline.serving.publish import publish

pytestmark = pytest.mark.integration


def plain_request(client, labels, request_id="", seed=0):
    """What any app does with plain tritonclient (no genline code)."""
    z = np.random.default_rng(seed).standard_normal((len(labels), 64)).astype(np.float32)
    inputs = [
        grpcclient.InferInput("label", [len(labels), 1], "INT64"),
        grpcclient.InferInput("z", [len(labels), 64], "FP32"),
    ]
    inputs[0].set_data_from_numpy(np.asarray(labels, np.int64).reshape(-1, 1))
    inputs[1].set_data_from_numpy(z)
    return client.infer(contract.MODEL_NAME, inputs, request_id=request_id)


def test_plain_tritonclient_traffic_is_logged(triton, published, grpc_client):
    start = time.time()
    res = plain_request(grpc_client, [3, 4, 5], request_id="plain-ok-1")
    plain_request(grpc_client, [1])  # no request id: the server assigns one
    with pytest.raises(InferenceServerException):
        plain_request(grpc_client, [11], request_id="plain-bad-1")
    df = store.read_predictions(triton.cfg.resolved_predlog_dir(), since=start)
    ok = df[df.request_id == "plain-ok-1"].sort_values("sample_index")
    assert ok.label.tolist() == [3, 4, 5] and ok.sample_index.tolist() == [0, 1, 2]
    assert set(ok.version) == {int(res.get_response().model_version)}
    assert set(ok.status) == {"OK"}
    assert ok.pred_class.notna().all() and ok.pred_confidence.between(0, 1).all()
    assert ok.mean_intensity.between(0, 1).all() and ok.ink_fraction.between(0, 1).all()
    assert (ok.latency_ms > 0).all() and ok.z_std.notna().all()
    bad = df[df.request_id == "plain-bad-1"]
    assert len(bad) == 1 and bad.status.iloc[0] == "INVALID_ARGUMENT"
    assert "outside the trained classes" in bad.error.iloc[0]
    assert (df.request_id.str.startswith("genline-") & (df.label == 1)).any()
    # the server seals its segment and compacts it into an hourly partition by itself
    store_dir = triton.cfg.resolved_predlog_dir() / store.STORE
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        stored = store.read_predictions(
            triton.cfg.resolved_predlog_dir(), compact_first=False, include_live=False
        )
        if "plain-ok-1" in set(stored.request_id):
            break
        time.sleep(0.5)
    else:
        pytest.fail("the server did not compact its spool into Parquet within 60 s")
    assert list(store_dir.glob("date=*/hour=*/part-*.parquet"))


@pytest.fixture
def own_server(tmp_path, model_dir, served_factory):
    """A separate server (its own ports and dirs) with the shared model published."""
    served = served_factory(tmp_path)
    srv.start(served.cfg)
    publish(model_dir, served.target)
    yield served
    srv.stop(served.cfg.resolved_run_dir(), timeout_s=10)


def _send(served, n, prefix):
    client = grpcclient.InferenceServerClient(served.cfg.grpc_url)
    try:
        for i in range(n):
            plain_request(client, [i % 10], request_id=f"{prefix}-{i}", seed=i)
    finally:
        client.close()
    return {f"{prefix}-{i}" for i in range(n)}


def _logged(served) -> set[str]:
    df = store.read_predictions(served.cfg.resolved_predlog_dir())
    return set(df.request_id)


def test_nothing_lost_across_a_graceful_restart(own_server):
    sent = _send(own_server, 40, "graceful")
    srv.stop(own_server.cfg.resolved_run_dir())
    srv.start(own_server.cfg)
    sent |= _send(own_server, 10, "after")
    assert sent <= _logged(own_server)


def test_nothing_lost_when_the_server_is_killed(own_server):
    sent = _send(own_server, 40, "killed")
    info = srv.running_server(own_server.cfg.resolved_run_dir())
    os.killpg(int(info["pid"]), signal.SIGKILL)  # server and its backend stubs, no cleanup
    deadline = time.monotonic() + 20
    while srv.running_server(own_server.cfg.resolved_run_dir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    # the segment was never sealed; the next start (or the surviving watcher) compacts it
    srv.start(own_server.cfg)
    logged = _logged(own_server)
    assert sent <= logged
    df = store.read_predictions(own_server.cfg.resolved_predlog_dir())
    assert not df.duplicated(["request_id", "sample_index"]).any()
