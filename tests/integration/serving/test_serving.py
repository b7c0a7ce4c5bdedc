"""Publish, generate, faults, version swap under load and rollback against a real Triton."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from genline import contract
from genline.alerts import read_alerts
from genline.client import GenerationError, GenlineClient
from genline.netutil import free_port
from genline.serving import repository as repo_mod
from genline.serving import server as srv
from genline.serving.config import check_config_against_onnx, parse_config
from genline.serving.profile import load_profile, load_serving_profile
from genline.serving.publish import PublishError, Target, publish, rollback
from genline.serving.registry import Registry

pytestmark = pytest.mark.integration

MODEL = contract.MODEL_NAME
GENLINE = str(Path(sys.executable).parent / "genline")


def infer(client, label, z, model=MODEL, version="", extra=None, label_dtype="INT64"):
    inputs = []
    for name, arr, dtype in [
        (contract.INPUT_LABEL, label, label_dtype),
        (contract.INPUT_Z, z, "FP32"),
        *(extra or []),
    ]:
        if arr is None:
            continue
        t = grpcclient.InferInput(name, list(arr.shape), dtype)
        t.set_data_from_numpy(arr)
        inputs.append(t)
    return client.infer(model, inputs, model_version=version)


def good(n=2, latent=64):
    rng = np.random.default_rng(0)
    return (
        np.arange(n, dtype=np.int64).reshape(-1, 1) % 10,
        rng.standard_normal((n, latent)).astype(np.float32),
    )


def serving_version(client) -> int:
    label, z = good()
    return int(infer(client, label, z).get_response().model_version)


def test_committed_config_matches_published_onnx(triton, published):
    onnx_path = triton.repo / MODEL / str(published) / contract.ONNX_FP32
    for cfg_path in (triton.repo / MODEL).rglob("*.pbtxt"):
        assert check_config_against_onnx(parse_config(cfg_path), onnx_path) == [], cfg_path


def test_publish_records_lineage_profile_and_serves(triton, published, model_dir, grpc_client):
    assert serving_version(grpc_client) == published
    entry = Registry(triton.target.registry_path).entry(triton.repo, MODEL)
    assert entry["serving"] == published
    lineage = entry["versions"][str(published)]["lineage"]
    export = __import__("json").loads((model_dir / contract.EXPORT_REPORT).read_text())
    # the bytes served as model.onnx: the adopted variant (INT8 when the rule adopts it)
    assert lineage["onnx_sha256"] == export["files"][export["serving_variant"]]
    assert lineage["dataset_fingerprint"]
    assert "fd_ratio" in lineage["metrics"] and lineage["gate"]["passed"] is True
    profile = load_profile(MODEL, published, triton.target.profile_dir)
    serving = load_serving_profile(
        triton.repo, directory=triton.target.profile_dir, registry_path=triton.target.registry_path
    )
    assert serving["version"] == published and serving["samples"] == profile["samples"]
    assert (
        len(profile["samples"]) == profile["probe"]["num_classes"] * profile["probe"]["per_class"]
    )
    assert 0.0 < profile["summary"]["mean_intensity"]["mean"] < 1.0
    status = srv.status(triton.cfg)
    assert status["ready"] and status["model_ready"] and published in status["loaded_versions"]


def test_client_and_cli_generate(triton, published, tmp_path):
    with GenlineClient(triton.cfg.grpc_url) as client:
        a = client.generate([7] * 16, seed=1)
        b = client.generate([7] * 16, seed=1)
    assert a.images.shape == (16, 1, 8, 8) and a.model_version == published
    assert np.isfinite(a.images).all() and a.images.min() >= 0 and a.images.max() <= 1
    np.testing.assert_array_equal(a.images, b.images)  # same seed -> same latents -> same images
    assert a.request_id != b.request_id
    out = tmp_path / "grid.png"
    res = subprocess.run(
        [
            GENLINE,
            "generate",
            "--label",
            "7",
            "-n",
            "16",
            "--seed",
            "1",
            "--out",
            str(out),
            "--url",
            triton.cfg.grpc_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert out.stat().st_size > 0 and f"model version {published}" in res.stdout


BAD_INPUTS = {
    "wrong dtype": dict(label=np.zeros((2, 1), np.float32), label_dtype="FP32"),
    "wrong shape": dict(z=np.zeros((2, 63), np.float32)),
    "label without its [B,1] shape": dict(label=np.zeros(2, np.int64)),
    "missing input": dict(z=None),
    "unknown input name": dict(extra=[("foo", np.zeros((2, 64), np.float32), "FP32")]),
    "label above classes": dict(label=np.full((2, 1), 10, np.int64)),
    "negative label": dict(label=np.full((2, 1), -1, np.int64)),
    "NaN in z": dict(z=np.full((2, 64), np.nan, np.float32)),
    "Inf in z": dict(
        z=np.concatenate([np.zeros((1, 64)), np.full((1, 64), np.inf)]).astype(np.float32)
    ),
    "empty batch": dict(label=np.zeros((0, 1), np.int64), z=np.zeros((0, 64), np.float32)),
    "batch above max_batch_size": dict(
        label=np.zeros((65, 1), np.int64), z=np.zeros((65, 64), np.float32)
    ),
    "batch sizes disagree": dict(z=np.zeros((3, 64), np.float32)),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_invalid_argument_and_server_stays_ready(case, triton, published, grpc_client):
    label, z = good()
    spec = dict(label=label, z=z, extra=None, label_dtype="INT64")
    spec.update(BAD_INPUTS[case])
    with pytest.raises(InferenceServerException) as err:
        infer(
            grpc_client,
            spec["label"],
            spec["z"],
            extra=spec["extra"],
            label_dtype=spec["label_dtype"],
        )
    assert err.value.status() == "StatusCode.INVALID_ARGUMENT", err.value.message()
    assert grpc_client.is_server_ready()
    assert serving_version(grpc_client) >= published  # and the next request is served


def test_bad_request_does_not_fail_its_batch_mates(triton, published):
    """Dynamic batching: a bad request in the same batch gets its own error only."""
    results = {}

    def call(name, label):
        client = grpcclient.InferenceServerClient(triton.cfg.grpc_url)
        z = np.zeros((1, 64), np.float32)
        try:
            for _ in range(20):
                infer(client, np.full((1, 1), label, np.int64), z)
            results[name] = "ok"
        except InferenceServerException as exc:
            results[name] = exc.status()
        finally:
            client.close()

    threads = [threading.Thread(target=call, args=(f"good{i}", 3)) for i in range(3)]
    threads.append(threading.Thread(target=call, args=("bad", 99)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {
        "good0": "ok",
        "good1": "ok",
        "good2": "ok",
        "bad": "StatusCode.INVALID_ARGUMENT",
    }


@pytest.mark.parametrize(
    "model,version", [("no_such_model", ""), (MODEL, "999"), ("../" + MODEL, "")]
)
def test_unknown_model_or_version_is_not_found(model, version, published, grpc_client):
    label, z = good()
    with pytest.raises(InferenceServerException) as err:
        infer(grpc_client, label, z, model=model, version=version)
    assert err.value.status() == "StatusCode.NOT_FOUND"


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", "a\\b", "", "genline_generator/.."])
def test_model_names_with_separators_are_refused(bad, triton):
    with pytest.raises(repo_mod.RepositoryError):
        repo_mod.check_model_name(bad)
    target = Target(**{**triton.target.__dict__, "model": bad})
    with pytest.raises(PublishError):
        publish(triton.repo, target)


@pytest.mark.parametrize("bad", ["../1", "1/..", "-1", "0", "1.5", "1/2"])
def test_versions_with_separators_are_refused(bad, triton, published, grpc_client):
    """genline refuses them before anything reaches the server or the disk. Triton itself
    parses the version with std::stol, so "1/.." means version 1 there (never a path): the
    server either refuses or answers from exactly that integer version."""
    with pytest.raises(repo_mod.RepositoryError):
        repo_mod.check_version(bad)
    with GenlineClient(triton.cfg.grpc_url) as client:
        with pytest.raises(GenerationError, match="refused"):
            client.generate([1], seed=0, version=bad)
    label, z = good()
    try:
        res = infer(grpc_client, label, z, version=bad)
    except InferenceServerException as exc:
        assert exc.status() in ("StatusCode.INVALID_ARGUMENT", "StatusCode.NOT_FOUND")
    else:
        leading = int(bad.split("/")[0].split(".")[0])
        assert int(res.get_response().model_version) == leading


def test_repository_control_needs_the_admin_header(triton, published, grpc_client):
    with pytest.raises(InferenceServerException):
        grpc_client.load_model(MODEL)
    with pytest.raises(InferenceServerException):
        grpc_client.get_model_repository_index()
    headers = srv.admin_headers(triton.cfg.resolved_run_dir())
    assert any(
        m["name"] == MODEL
        for m in grpc_client.get_model_repository_index(headers=headers, as_json=True)["models"]
    )
    # and Triton itself refuses names that would leave the repository
    with pytest.raises(InferenceServerException):
        grpc_client.load_model("../" + MODEL, headers=headers)


def test_corrupt_onnx_is_quarantined_and_previous_keeps_serving(
    triton, published, grpc_client, tmp_path
):
    import onnx_fixture

    before = serving_version(grpc_client)
    bad = onnx_fixture.make_model_dir(tmp_path / "bad", corrupt_onnx=True)
    n_alerts = len(read_alerts(triton.target.alert_dir))
    with pytest.raises(PublishError) as err:
        publish(bad, triton.target)
    version = err.value.version
    assert version is not None and version > before
    assert version in repo_mod.quarantined(triton.repo, MODEL)
    assert version not in repo_mod.versions(triton.repo, MODEL)
    assert serving_version(grpc_client) == before
    assert grpc_client.is_server_ready()
    alerts = read_alerts(triton.target.alert_dir)
    assert len(alerts) == n_alerts + 1 and str(version) in alerts[-1]["summary"]
    assert alerts[-1]["severity"] == "critical" and alerts[-1]["kind"] == "publish.failed"
    assert Registry(triton.target.registry_path).serving(triton.repo, MODEL) == before
    # the number is never reused
    assert repo_mod.next_version(triton.repo, MODEL) > version


def test_gate_failure_and_sha_mismatch_are_refused(triton, published, grpc_client, tmp_path):
    import onnx_fixture

    before = serving_version(grpc_client)
    failed = onnx_fixture.make_model_dir(tmp_path / "failed", passed=False)
    with pytest.raises(PublishError, match="quality gate"):
        publish(failed, triton.target)
    tampered = onnx_fixture.make_model_dir(tmp_path / "tampered")
    with open(tampered / contract.ONNX_FP32, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(PublishError, match="sha256") as err:
        publish(tampered, triton.target)
    assert err.value.version in repo_mod.quarantined(triton.repo, MODEL)
    assert serving_version(grpc_client) == before
    res = subprocess.run(
        [
            GENLINE,
            "publish",
            "--model",
            str(failed),
            "--repository",
            str(triton.repo),
            "--url",
            triton.cfg.grpc_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode != 0 and "quality gate" in res.stderr


def test_version_swap_under_load_then_rollback(triton, published, model_dir, grpc_client, tmp_path):
    """8 clients hammer the server while a new version is published: zero failures, and every
    response names a version that was loaded at the time. Then roll back with the canary."""
    import onnx_fixture

    # another ONNX (same graph, other bytes): publishing the serving one again is a no-op
    newer = onnx_fixture.copy_model_dir(model_dir, tmp_path / "newer", tag="swap")
    old = serving_version(grpc_client)
    stop = threading.Event()
    seen: list[tuple[float, int]] = []
    failures: list[str] = []
    lock = threading.Lock()

    def worker(seed):
        client = GenlineClient(triton.cfg.grpc_url, retries=0, timeout_s=30)
        rng = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                try:
                    out = client.generate(rng.integers(0, 10, 1), seed=int(rng.integers(1 << 30)))
                    with lock:
                        seen.append((time.monotonic(), out.model_version))
                except Exception as exc:
                    with lock:
                        failures.append(repr(exc))
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    result = publish(newer, triton.target)
    assert result.created and result.version > old
    t_published = time.monotonic()
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert failures == []
    versions = {v for _, v in seen}
    assert versions <= {old, result.version}, versions
    assert result.version in versions and old in versions
    # after the publish returned, nothing is answered by the old version any more
    assert all(v == result.version for t, v in seen if t > t_published + 0.2)

    rolled, now = rollback(triton.target)
    assert (rolled, now) == (result.version, old)
    assert serving_version(grpc_client) == old
    assert result.version in repo_mod.quarantined(triton.repo, MODEL)
    assert Registry(triton.target.registry_path).serving(triton.repo, MODEL) == old


def test_client_retries_only_on_unavailable(triton, published):
    port = free_port()  # nothing listens here: UNAVAILABLE
    with GenlineClient(f"127.0.0.1:{port}", retries=2, backoff_s=0.01) as client:
        with pytest.raises(GenerationError) as err:
            client.generate([1], z=np.zeros((1, 64), np.float32))
    assert err.value.status == "UNAVAILABLE" and err.value.attempts == 3
    with GenlineClient(triton.cfg.grpc_url, retries=3) as client:
        with pytest.raises(GenerationError) as err:
            client.generate([42], seed=0)  # INVALID_ARGUMENT: not retried
    assert err.value.status == "INVALID_ARGUMENT" and err.value.attempts == 1
