"""The serving-side drift monitors against a real Triton server and the trained ci model.

One server of this module's own (versions come and go here): version 1 is the ci model
published for real (reference profile and staleness baseline recorded by publish). Traffic is
plain tritonclient requests with app request ids; each test's window is the span of its own
logged requests, so other traffic never enters it.

- unshifted traffic: serving health, request mix and staleness all say no_drift;
- z scaled by 0.5: request mix fires, staleness and serving health do not;
- a window below the minimum per label: insufficient_data, never drift or no_drift;
- a broken artifact (the good graph with its images scaled by 0.6) served as version 2 whose
  reference profile came from version 1: serving health "drift" and a drift.serving alert;
- version 3 served without its embedding (the log's emb_* columns are all null): an "error"
  verdict and a drift.schema alert, never "no_drift".
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import tritonclient.grpc as grpcclient
from onnx import helper, numpy_helper

from genline import contract
from genline.alerts import read_alerts, send_alert
from genline.control import ControlClient
from genline.drift import DriftConfig
from genline.drift_verdicts import read_verdicts
from genline.monitoring import MonitorPaths, alert_for, evaluate_window
from genline.serving import features as feat
from genline.serving import profile as prof
from genline.serving import server as srv
from genline.serving import store
from genline.serving.publish import publish
from genline.serving.repository import model_dir as repo_model_dir

from .conftest import make_served

pytestmark = pytest.mark.integration

NUM_CLASSES = 10


@pytest.fixture(scope="module")
def drift_server(tmp_path_factory, model_dir):
    served = make_served(tmp_path_factory.mktemp("drift_triton"))
    srv.start(served.cfg)
    result = publish(model_dir, served.target)
    assert result.version == 1
    yield served
    srv.stop(served.cfg.resolved_run_dir())


@pytest.fixture(scope="module")
def cfg() -> DriftConfig:
    return DriftConfig()


def paths_of(served) -> MonitorPaths:
    home = served.home
    return MonitorPaths(
        predlog_dir=served.cfg.resolved_predlog_dir(),
        repository=served.repo,
        registry_path=served.target.registry_path,
        profile_dir=served.target.profile_dir,
        verdict_dir=home / "drift",
        state_root=home,  # no accepted batches: staleness compares with the training data
    )


def send(served, prefix: str, per_label: int, *, z_scale=1.0, version="", seed=0) -> set[str]:
    """`per_label` samples of every label, in requests of 50 samples; returns the request ids."""
    labels = np.tile(np.arange(NUM_CLASSES), per_label)
    z = np.random.default_rng(seed).standard_normal((len(labels), 64)).astype(np.float32)
    z *= z_scale
    client = grpcclient.InferenceServerClient(served.cfg.grpc_url)
    ids = set()
    try:
        for k, i in enumerate(range(0, len(labels), 50)):
            inputs = [
                grpcclient.InferInput("label", [len(labels[i : i + 50]), 1], "INT64"),
                grpcclient.InferInput("z", [len(labels[i : i + 50]), 64], "FP32"),
            ]
            inputs[0].set_data_from_numpy(labels[i : i + 50].reshape(-1, 1))
            inputs[1].set_data_from_numpy(z[i : i + 50])
            rid = f"{prefix}-{k}"
            client.infer(contract.MODEL_NAME, inputs, request_id=rid, model_version=version)
            ids.add(rid)
    finally:
        client.close()
    return ids


def window_of(served, ids: set[str]) -> tuple[float, float]:
    """The span of these requests' logged times (the server's clock, not the test's)."""
    df = store.read_window(
        None, None, served.cfg.resolved_predlog_dir(), compact_first=True, include_live=True
    )
    t = df[df.request_id.isin(ids)]["time"]
    assert len(t), f"none of {sorted(ids)[:3]}... is in the prediction log"
    return float(t.min()), float(t.max()) + 1e-3


def judge(served, cfg, monitor: str, key: str, ids: set[str]):
    start, end = window_of(served, ids)
    return evaluate_window(monitor, key, start, end, cfg, paths_of(served))


def by_version(verdicts):
    return {v.version: v for v in verdicts}


def test_publish_records_a_big_enough_profile_and_a_staleness_baseline(drift_server):
    p = prof.load_profile(contract.MODEL_NAME, 1, drift_server.target.profile_dir)
    assert p["probe"]["per_class"] == prof.PER_CLASS >= 320
    ref = prof.reference_frame(p)
    assert len(ref) == NUM_CLASSES * prof.PER_CLASS
    assert set(feat.DRIFT_FEATURES) <= set(ref.columns)
    assert ref[list(feat.EMBEDDING_FEATURES)].notna().all().all()
    record = prof.load_staleness_baseline(contract.MODEL_NAME, 1, drift_server.target.profile_dir)
    assert record["dataset"]["source"].startswith("builtin") and record["baseline"]
    # the probe's requests were logged as "profile", the canary's as "canary": not app traffic
    df = store.read_window(
        None, None, drift_server.cfg.resolved_predlog_dir(), compact_first=True, include_live=True
    )
    assert {"profile", "canary"} <= set(df.source)
    assert store.app_traffic(df).empty


def test_unshifted_traffic_is_no_drift_on_every_monitor(drift_server, cfg):
    ids = send(drift_server, "plain", per_label=cfg.min_samples, seed=1)
    for monitor in ("serving_health", "request_mix", "staleness"):
        (v,) = judge(drift_server, cfg, monitor, "plain", ids)
        assert v.status == "no_drift", (monitor, v.reason, v.scores)
        assert v.version == 1 and v.n == NUM_CLASSES * cfg.min_samples


def test_scaled_z_fires_request_mix_not_staleness(drift_server, cfg):
    ids = send(drift_server, "halfz", per_label=cfg.min_samples, z_scale=0.5, seed=2)
    (mix,) = judge(drift_server, cfg, "request_mix", "halfz", ids)
    (stale,) = judge(drift_server, cfg, "staleness", "halfz", ids)
    assert mix.status == "drift", (mix.reason, mix.scores)
    assert any("z_" in key for key in mix.drifted), mix.drifted
    alert = alert_for(mix)
    assert alert["kind"] == "drift.request_mix" and alert["severity"] == "warning"
    # the outputs of a scaled z say nothing about the model: staleness and serving health leave
    # those rows out (request mix's question) and do not fire
    for v in (stale, *judge(drift_server, cfg, "serving_health", "halfz", ids)):
        assert v.status == "insufficient_data" and not v.drifted, (v.monitor, v.reason)
        assert v.details["non_standard_latent_rows"] == cfg.min_samples * NUM_CLASSES
        assert alert_for(v) is None


def test_a_window_below_the_minimum_is_insufficient_data(drift_server, cfg):
    ids = send(drift_server, "few", per_label=max(1, cfg.min_samples // 4), seed=3)
    for monitor in ("serving_health", "request_mix", "staleness"):
        (v,) = judge(drift_server, cfg, monitor, "few", ids)
        assert v.status == "insufficient_data", (monitor, v.status, v.reason)
        assert not v.drifted and alert_for(v) is None


def _accepted_state(root: Path, plain_days: list[str], thick_days: list[str], trained: list[str]):
    """A state dir whose accepted batches are digits (`plain_days`) and held-out digits drawn
    thicker (`thick_days`), and version 1's lineage naming the days it was trained on."""
    from genline.data import load_builtin
    from genline.ingest import BatchStore
    from genline.ingest.simulation import styled
    from genline.ingest.store import BATCH_FILE
    from genline.lineage_record import SCHEMA, record_path
    from genline.npzfiles import save_npz

    digits = load_builtin()
    parts = np.array_split(np.random.default_rng(0).permutation(len(digits)), 4)
    store = BatchStore(root)
    for day, idx in zip(plain_days, parts[:2], strict=False):
        save_npz(digits.subset(idx), store.accepted / day / BATCH_FILE)
    for day, idx in zip(thick_days, parts[2:], strict=False):
        save_npz(styled(digits.subset(idx), "thick"), store.accepted / day / BATCH_FILE)
    path = record_path(contract.MODEL_NAME, 1, root / "lineage")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema": SCHEMA, "links": [
        {"link": "batches", "status": "recorded", "value": [{"day": d} for d in trained]}]}))


def test_staleness_judges_the_batches_the_version_never_saw(drift_server, cfg, tmp_path):
    """New-style batches accepted after the version's data version are the world as it is now:
    judged on their own they show the shift at full strength; once the version's lineage
    includes them, they are part of its data and the union (held out) is the reference."""
    plain, thick = ["2026-11-01", "2026-11-02"], ["2026-11-03", "2026-11-04"]
    ids = send(drift_server, "unseen", per_label=cfg.min_samples, seed=7)
    start, end = window_of(drift_server, ids)

    def staleness(state: Path):
        paths = replace(paths_of(drift_server), state_root=state, verdict_dir=state / "drift")
        (v,) = evaluate_window("staleness", "unseen", start, end, cfg, paths)
        return v

    _accepted_state(tmp_path / "a", plain, thick, trained=plain)
    v = staleness(tmp_path / "a")
    assert v.details["real_data"].startswith("2 accepted batches version 1 was not trained on "
                                             "(2026-11-03..2026-11-04"), v.details
    assert v.status == "drift" and v.scores["mmd2_excess"] > 4 * cfg.staleness_margin, v.reason
    _accepted_state(tmp_path / "b", plain, thick, trained=plain + thick)
    v = staleness(tmp_path / "b")
    assert v.details["real_data"].startswith("accepted batches in ") and "held out" in v.details[
        "real_data"], v.details


def broken_copy(
    good: Path, dest: Path, version: int, *, scale: float | None = None, drop: tuple[str, ...] = ()
) -> None:
    """Version `version` made from the good version's directory: images scaled by `scale`
    (a numeric fault in the artifact), or files left out."""
    shutil.copytree(good, dest)
    for name in drop:
        (dest / name).unlink()
    meta = dest / contract.SERVING_META
    meta.write_text(meta.read_text().replace('"version": 1', f'"version": {version}'))
    if scale is not None:
        model = onnx.load(str(good / contract.ONNX_FP32))
        out = model.graph.output[0].name
        for node in model.graph.node:  # the last producer now feeds the scaling
            node.output[:] = [o + "_unscaled" if o == out else o for o in node.output]
        model.graph.initializer.append(
            numpy_helper.from_array(np.array(scale, np.float32), "fault_scale")
        )
        model.graph.node.append(helper.make_node("Mul", [out + "_unscaled", "fault_scale"], [out]))
        onnx.save(model, str(dest / contract.ONNX_FP32))


def serve_fault(served, version: int, **fault) -> None:
    """Put a faulty version next to version 1, give it version 1's reference profile and
    baseline, and load it (Triton serves the two newest versions)."""
    root = repo_model_dir(served.repo, contract.MODEL_NAME)
    broken_copy(root / "1", root / str(version), version, **fault)
    for src, dst in (
        (
            prof.profile_path(contract.MODEL_NAME, 1, served.target.profile_dir),
            prof.profile_path(contract.MODEL_NAME, version, served.target.profile_dir),
        ),
        (
            prof.baseline_path(contract.MODEL_NAME, 1, served.target.profile_dir),
            prof.baseline_path(contract.MODEL_NAME, version, served.target.profile_dir),
        ),
    ):
        shutil.copy(src, dst)
    with ControlClient(served.cfg.grpc_url, run_dir=served.cfg.resolved_run_dir()) as ctl:
        ctl.load()
        assert version in ctl.loaded_versions()


def test_a_broken_artifact_under_a_good_reference_is_detected(drift_server, cfg):
    serve_fault(drift_server, 2, scale=0.6)
    good = send(drift_server, "span-good", per_label=cfg.min_samples, version="1", seed=4)
    bad = send(drift_server, "span-bad", per_label=cfg.min_samples, version="2", seed=5)
    verdicts = by_version(judge(drift_server, cfg, "serving_health", "span", good | bad))
    assert set(verdicts) == {1, 2}  # a window spanning the change: one verdict per version
    # v1's own unshifted rows: no_drift in calibration (0-0.6% false alarms per window), but one
    # fresh-clone run flagged label=4/emb_2 here; never an error, and the alert must name v2
    assert verdicts[1].status in ("no_drift", "drift"), (verdicts[1].reason, verdicts[1].scores)
    v = verdicts[2]
    assert v.status == "drift" and v.drifted, v.reason
    assert v.report and Path(v.report).is_file()
    kwargs = alert_for(v)
    sent = send_alert(
        kwargs.pop("source"), kwargs.pop("summary"), sink_dir=drift_server.home / "alerts", **kwargs
    )
    assert sent["kind"] == "drift.serving" and sent["severity"] == "critical"
    fired = [a for a in read_alerts(drift_server.home / "alerts") if a["kind"] == "drift.serving"]
    assert fired and "version 2" in fired[-1]["summary"]
    recorded = read_verdicts(
        monitor="serving_health", version=2, directory=drift_server.home / "drift"
    )
    assert [r.status for r in recorded] == ["drift"]


def test_a_missing_feature_column_is_an_error_not_no_drift(drift_server, cfg):
    serve_fault(drift_server, 3, drop=(feat.EMBEDDING_FILE,))
    ids = send(drift_server, "noemb", per_label=cfg.min_samples, version="3", seed=6)
    start, end = window_of(drift_server, ids)
    rows = store.read_app_traffic(start, end, drift_server.cfg.resolved_predlog_dir())[3]
    assert rows[list(feat.EMBEDDING_FEATURES)].isna().all().all()  # what the fault looks like
    for monitor in ("serving_health", "staleness"):
        (v,) = judge(drift_server, cfg, monitor, "noemb", ids)
        assert v.status == "error", (monitor, v.status, v.reason)
        assert "emb_" in v.reason or "embedding" in v.reason, v.reason
        kwargs = alert_for(v)
        assert kwargs["kind"] == "drift.schema"
