"""The drift assets over a real prediction log, in a real Dagster instance.

The log is written by the spool writer the server uses and compacted by the real store; the
served "model" is the small onnx.helper generator and evaluator (tests/unit/serving/onnx_fixture),
run with ONNX Runtime, with a real embedding fitted on the built-in digits and a reference
profile and staleness baseline built by the same code publish uses. 2-minute windows
(GENLINE_DRIFT_WINDOW_MINUTES=2), the clock pinned at 2026-11-29T12:00Z.
"""

from __future__ import annotations

import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import onnxruntime as ort
import pytest

from genline import contract
from genline.alerts import read_alerts
from genline.drift_verdicts import read_verdicts
from genline.serving import features as feat
from genline.serving import profile as prof
from genline.serving import spool, store

from .conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tests" / "unit" / "serving"))
import onnx_fixture  # noqa: E402

pytestmark = pytest.mark.integration

MODEL = contract.MODEL_NAME
WINDOW = "2026-11-29-11:56"  # 11:56 <= t < 11:58 UTC
T0 = datetime(2026, 11, 29, 11, 56, tzinfo=UTC).timestamp()
MONITORS = ("serving_health", "request_mix", "staleness")


def generate(model_onnx: Path, labels: np.ndarray, z: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(model_onnx), providers=["CPUExecutionProvider"])
    out = sess.run([contract.OUTPUT_IMAGE], {contract.INPUT_LABEL: labels, contract.INPUT_Z: z})
    return out[0]


def make_version(repo: Path, version: int, generator_scale: float, reference_of: int | None):
    """A served version directory (generator, evaluator, embedding, serving metadata), with its
    reference profile and baseline (or those of version `reference_of`)."""
    from genline.data import load_builtin
    from genline.embedding import Embedding

    vdir = repo / MODEL / str(version)
    vdir.mkdir(parents=True)
    src = onnx_fixture.make_model_dir(vdir.parent / f"src{version}")
    shutil.copy(src / contract.EVALUATOR_ONNX, vdir / contract.EVALUATOR_ONNX)
    import onnx

    onnx.save(onnx_fixture.generator_graph(scale=generator_scale), str(vdir / contract.ONNX_FP32))
    digits = load_builtin()
    Embedding.fit(vdir / contract.EVALUATOR_ONNX, digits.images).save(vdir / contract.EMBEDDING)
    meta = {"num_classes": 10, "latent_dim": 64, "image_shape": [1, 8, 8], "version": version}
    (vdir / contract.SERVING_META).write_text(json.dumps(meta))
    if reference_of is None:
        probe = prof.ProbeSet(10, 64)
        labels, z = probe.arrays()
        images = generate(vdir / contract.ONNX_FP32, labels, z)
        profile = prof.build_profile(
            MODEL, version, probe, images, vdir / contract.EVALUATOR_ONNX, vdir / contract.EMBEDDING
        )
        prof.save_profile(profile)
        baseline = prof.build_staleness_baseline(
            profile, digits.info(), vdir / contract.EVALUATOR_ONNX, vdir / contract.EMBEDDING
        )
        prof.save_staleness_baseline(baseline)
    else:
        for path in (prof.profile_path, prof.baseline_path):
            shutil.copy(path(MODEL, reference_of), path(MODEL, version))
    return vdir


def log_traffic(predlog: Path, vdir: Path, version: int, per_label: int, t: float, seed: int):
    """App traffic answered by `vdir`'s generator, written by the server's spool writer."""
    w = spool.SpoolWriter(
        predlog,
        {
            "model": MODEL,
            "version": version,
            "instance": f"i{version}",
            "evaluator": str(vdir / contract.EVALUATOR_ONNX),
            "embedding": str(vdir / contract.EMBEDDING),
            "image_shape": [1, 8, 8],
        },
        compact=False,
    )
    labels = np.tile(np.arange(10), per_label).astype(np.int64)
    z = np.random.default_rng(seed).standard_normal((len(labels), 64)).astype(np.float32)
    images = generate(vdir / contract.ONNX_FP32, labels, z)
    for k, i in enumerate(range(0, len(labels), 50)):
        rec = {
            "request_id": f"app-v{version}-{seed}-{k}",
            "time": t + k * 0.01,
            "status": "OK",
            "version": version,
            "batch": len(labels[i : i + 50]),
        }
        rec.update(feat.summarize(labels[i : i + 50], z[i : i + 50], images[i : i + 50]))
        rec["images"] = feat.encode_images(images[i : i + 50])
        w.write(rec)
    # the canary's request is logged too, and must not count
    rec = {
        "request_id": f"{feat.CANARY_PREFIX}{seed}",
        "time": t,
        "status": "OK",
        "version": version,
        "batch": 1,
    }
    rec.update(feat.summarize(labels[:1], z[:1] * 5, images[:1]))
    w.write(rec)
    w.close(compact_now=False)
    store.compact(predlog)


@pytest.fixture()
def world(tmp_path, state, monkeypatch):
    monkeypatch.setenv("GENLINE_DRIFT_WINDOW_MINUTES", "2")
    monkeypatch.delenv(spool.DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)  # the resource's default repository is ./triton_repo
    repo = tmp_path / "triton_repo"
    v1 = make_version(repo, 1, 1.0, None)
    return {"repo": repo, "v1": v1, "predlog": spool.default_dir(), "state": state}


def load_defs():
    from dagster_project.definitions import defs

    return defs()


def run_window(defs, instance, key=WINDOW):
    result = defs.resolve_job_def("drift_job").execute_in_process(
        partition_key=key, instance=instance, raise_on_error=False
    )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result


def materialized(result, asset: str) -> dict:
    (mat,) = result.asset_materializations_for_node(asset)
    return mat.metadata


def test_drift_definitions_follow_the_configured_window(world, instance):
    defs = load_defs()
    job = defs.resolve_job_def("drift_job")
    parts = job.partitions_def
    assert isinstance(parts, dg.TimeWindowPartitionsDefinition)
    assert parts.cron_schedule == "*/2 * * * *"
    schedule = defs.resolve_schedule_def("drift_schedule")
    assert schedule.cron_schedule == "*/2 * * * *"
    ctx = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    )
    (request,) = schedule.evaluate_tick(ctx).run_requests
    assert request.partition_key == "2026-11-29-11:58"  # the window that just ended
    from dagster_project.defs.monitoring import latest_complete_window

    assert latest_complete_window(parts) == "2026-11-29-11:58"  # by genline.clock


def test_an_unshifted_window_is_no_drift_with_scores_and_reports(world, instance):
    log_traffic(world["predlog"], world["v1"], 1, per_label=40, t=T0 + 5, seed=1)
    result = run_window(load_defs(), instance)
    for monitor in MONITORS:
        (v,) = read_verdicts(monitor=monitor)
        assert (v.status, v.version, v.window_key) == ("no_drift", 1, WINDOW), (monitor, v.reason)
        assert v.n == 400  # the canary's row is not app traffic
        meta = materialized(result, f"{monitor}_drift")
        assert meta["verdict"].value == "no_drift"
        assert meta["scores"].value and meta["thresholds"].value
        url = meta["report"].value
        assert url.startswith("file://") and Path(url[len("file://") :]).is_file()
    assert not [a for a in read_alerts() if a["kind"].startswith("drift.")]


def test_a_window_spanning_a_faulty_version_gives_one_verdict_per_version(world, instance):
    # version 2 answers with another generator, under version 1's reference: a serving fault
    v2 = make_version(world["repo"], 2, 3.0, reference_of=1)
    log_traffic(world["predlog"], world["v1"], 1, per_label=40, t=T0 + 5, seed=2)
    log_traffic(world["predlog"], v2, 2, per_label=40, t=T0 + 60, seed=3)
    result = run_window(load_defs(), instance)
    health = {v.version: v for v in read_verdicts(monitor="serving_health")}
    assert health[1].status == "no_drift", health[1].reason
    assert health[2].status == "drift" and health[2].drifted, health[2].reason
    meta = materialized(result, "serving_health_drift")
    assert meta["verdict"].value == "drift"
    assert meta["versions"].value["2"]["status"] == "drift"
    assert {"v1 scores", "v2 scores", "v2 report"} <= set(meta)
    fired = [a for a in read_alerts() if a["kind"] == "drift.serving"]
    assert fired and fired[-1]["severity"] == "critical" and "version 2" in fired[-1]["summary"]


def test_an_empty_or_thin_window_is_insufficient_data_and_alerts_nothing(world, instance):
    log_traffic(world["predlog"], world["v1"], 1, per_label=5, t=T0 + 5, seed=4)
    run_window(load_defs(), instance)
    run_window(load_defs(), instance, key="2026-11-29-11:58")  # no traffic at all
    for monitor in MONITORS:
        by_key = {v.window_key: v for v in read_verdicts(monitor=monitor)}
        assert by_key[WINDOW].status == "insufficient_data", (monitor, by_key[WINDOW].reason)
        assert by_key["2026-11-29-11:58"].status == "insufficient_data"
        assert by_key["2026-11-29-11:58"].n == 0
    assert not [a for a in read_alerts() if a["kind"].startswith("drift.")]


def test_a_missing_reference_is_an_error_verdict_and_a_schema_alert(world, instance):
    prof.baseline_path(MODEL, 1).unlink()  # e.g. the training data had moved at publish
    log_traffic(world["predlog"], world["v1"], 1, per_label=40, t=T0 + 5, seed=5)
    run_window(load_defs(), instance)
    (v,) = read_verdicts(monitor="staleness")
    assert v.status == "error" and "staleness baseline" in v.reason, v.reason
    (health,) = read_verdicts(monitor="serving_health")
    assert health.status == "no_drift"
    schema = [a for a in read_alerts() if a["kind"] == "drift.schema"]
    assert schema and "staleness" in schema[-1]["summary"]
