"""Cancellation and client deadlines against a real Triton: what the client sees, what is logged.

The server runs with the backend's test hook (GENLINE_TEST_EXECUTE_DELAY_S, read when the model
loads): every batch pauses in execute() before the generator runs, checking cancellation every
10 ms, so a 1 ms client deadline always expires while its request is inside the model. Measured
on Triton 2.51 over gRPC: an expired client deadline does propagate, as a cancellation the model
sees with request.is_cancelled(); the model cannot tell it from an explicit cancel. Requests
that expire while still in Triton's queue are dropped by Triton before the model sees them (and
counted in Triton's failure statistics, not the prediction log); see docs/serving.md.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from genline import contract
from genline.client import GenerationError, GenlineClient
from genline.serving import backend_model, store
from genline.serving import server as srv
from genline.serving.publish import publish
from tests.integration.serving.conftest import make_served

pytestmark = pytest.mark.integration

PAUSE_S = 0.5  # every batch's pause: long against 1 ms, short enough for the publish canary


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory, model_dir):
    """A server of its own, started with the execute() pause on, the ci model published."""
    served = make_served(tmp_path_factory.mktemp("cancel"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(backend_model.TEST_DELAY_ENV, str(PAUSE_S))  # the stub inherits it at start
        srv.start(served.cfg)
    publish(model_dir, served.target)
    yield served
    srv.stop(served.cfg.resolved_run_dir(), timeout_s=30)


def inputs(n: int = 1) -> list:
    z = np.random.default_rng(n).standard_normal((n, 64)).astype(np.float32)
    out = [
        grpcclient.InferInput(contract.INPUT_LABEL, [n, 1], "INT64"),
        grpcclient.InferInput(contract.INPUT_Z, [n, 64], "FP32"),
    ]
    out[0].set_data_from_numpy(np.arange(n, dtype=np.int64).reshape(-1, 1) % 10)
    out[1].set_data_from_numpy(z)
    return out


def logged(served, since: float):
    df = store.read_predictions(served.cfg.resolved_predlog_dir(), since=since)
    return {r.request_id: r for r in df.itertuples()}


def wait_for_log_line(served, needle: str, timeout_s: float = 60.0) -> None:
    """Block until Triton's log (the stub prints there) contains `needle`."""
    log = served.cfg.resolved_run_dir() / "triton.log"
    deadline = time.monotonic() + timeout_s
    while needle not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{needle!r} never appeared in {log}"
        time.sleep(0.05)


ATTEMPTS = 5  # a 1 ms request may expire in Triton's queue, where Triton drops it unlogged


def test_plain_client_deadline_is_deadline_exceeded_and_logged_as_cancelled(slow_server):
    """Every 1 ms call fails DEADLINE_EXCEEDED and the next request succeeds; the first 1 ms
    request that reached the model is logged CANCELLED (one that expired while still queued is
    dropped by Triton before the model sees it, so the test tries a bounded number of times)."""
    start = time.time()
    client = grpcclient.InferenceServerClient(slow_server.cfg.grpc_url)
    try:
        assert client.is_model_ready(contract.MODEL_NAME)  # channel up before the 1 ms call
        for attempt in range(ATTEMPTS):
            with pytest.raises(InferenceServerException) as err:
                client.infer(contract.MODEL_NAME, inputs(), request_id=f"deadline-plain-{attempt}",
                             client_timeout=0.001)
            assert err.value.status() == "StatusCode.DEADLINE_EXCEEDED"
            ok = client.infer(contract.MODEL_NAME, inputs(2),
                              request_id=f"after-deadline-plain-{attempt}")
            assert ok.as_numpy(contract.OUTPUT_IMAGE).shape == (2, 1, 8, 8)
            rows = logged(slow_server, start)
            if f"deadline-plain-{attempt}" in rows:
                break
        else:
            pytest.fail(f"none of {ATTEMPTS} 1 ms requests reached the model")
    finally:
        client.close()
    # plain tritonclient declares no deadline to the server: all it knows is a cancellation
    assert rows[f"deadline-plain-{attempt}"].status == "CANCELLED"
    assert "expired gRPC deadline" in rows[f"deadline-plain-{attempt}"].error
    assert rows[f"after-deadline-plain-{attempt}"].status == "OK"


def test_genline_client_deadline_is_logged_as_deadline_exceeded(slow_server):
    start = time.time()
    with GenlineClient(slow_server.cfg.grpc_url, retries=0) as client:
        # model config and metadata fetched under the normal timeout, then a 1 ms deadline
        client.max_batch_size()
        z = np.zeros((1, client.latent_dim()), np.float32)
        for attempt in range(ATTEMPTS):
            client.timeout_s = 0.001
            with pytest.raises(GenerationError) as err:
                client.generate([3], z=z, request_id=f"deadline-genline-{attempt}")
            assert err.value.status == "DEADLINE_EXCEEDED" and err.value.attempts == 1
            client.timeout_s = 30.0
            out = client.generate([4], z=z, request_id=f"after-deadline-genline-{attempt}")
            assert out.images.shape == (1, 1, 8, 8)
            rows = logged(slow_server, start)
            if f"deadline-genline-{attempt}" in rows:
                break
        else:
            pytest.fail(f"none of {ATTEMPTS} 1 ms requests reached the model")
    rec = rows[f"deadline-genline-{attempt}"]
    assert rec.status == "DEADLINE_EXCEEDED" and "client's deadline passed" in rec.error
    assert rows[f"after-deadline-genline-{attempt}"].status == "OK"


def test_explicit_cancel_inside_the_model_is_cancelled_for_client_and_log(slow_server):
    start = time.time()
    client = grpcclient.InferenceServerClient(slow_server.cfg.grpc_url)
    done = threading.Event()
    got: dict = {}

    def callback(result, error):
        got["result"], got["error"] = result, error
        done.set()

    try:
        ctx = client.async_infer(
            contract.MODEL_NAME,
            inputs(),
            callback,
            request_id="cancel-explicit",
            parameters={backend_model.TEST_DELAY_PARAM: 120},
        )
        wait_for_log_line(slow_server, "pausing cancel-explicit")  # it is inside execute()
        ctx.cancel()
        assert done.wait(60), "the cancelled call never completed"
        assert got["error"] is not None and got["error"].status() == "StatusCode.CANCELLED"
        ok = client.infer(
            contract.MODEL_NAME, inputs(), request_id="after-cancel", client_timeout=60
        )
        assert ok.as_numpy(contract.OUTPUT_IMAGE).shape == (1, 1, 8, 8)
    finally:
        client.close()
    rows = logged(slow_server, start)
    # the 120 s pause ended at the cancellation: the next request was served meanwhile
    assert rows["cancel-explicit"].status == "CANCELLED"
    assert rows["cancel-explicit"].error == backend_model.CANCELLED_PAUSED
    assert rows["after-cancel"].status == "OK"


@pytest.mark.parametrize("raw,expected", [("", None), ("0", 0.0), ("0.25", 0.25), (" 2 ", 2.0)])
def test_test_delay_env_parsing(raw, expected):
    assert backend_model.test_delay_s({backend_model.TEST_DELAY_ENV: raw}) == expected


@pytest.mark.parametrize("raw", ["-1", "soon", "nan", "inf"])
def test_bad_test_delay_env_is_a_clear_error(raw):
    with pytest.raises(ValueError, match=backend_model.TEST_DELAY_ENV):
        backend_model.test_delay_s({backend_model.TEST_DELAY_ENV: raw})


def test_generate_cli_timeout(slow_server, tmp_path):
    """`genline generate --timeout` is the per-attempt gRPC deadline; a bad value is refused."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "genline.cli", "generate", "--label", "3", "-n", "2",
           "--url", slow_server.cfg.grpc_url, "--out", str(tmp_path / "g.png")]
    r = subprocess.run([*cmd, "--timeout", "0"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--timeout" in r.stderr
    r = subprocess.run([*cmd, "--timeout", "0.001"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "DEADLINE_EXCEEDED" in r.stderr, r.stderr
    assert not (tmp_path / "g.png").exists()
    r = subprocess.run([*cmd, "--timeout", "30"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "g.png").exists()
