"""Retraining closes the loop, for real: champion/challenger through the Kubeflow pipeline
(kfp.local), the Dagster asset that launches it, the publish into a real Triton, and
`genline lineage` on the retrained version.

The line as it runs here: real ingest of simulated days -> a real DVC version (with its batches,
as training_dataset records them) -> version 1, a weak but gated model (the ci architecture
after 300 iterations: fd_ratio about 2), trained on that version and published into a real
Triton -> app traffic is logged -> a staleness verdict about version 1 -> the Dagster asset
generator_model runs the pipeline with the drift trigger, warm-started from the serving version
and judged against it as champion: the challenger wins and is published as version 2 -> traffic
and a verdict about version 2 -> `genline lineage 2 --json` shows every link, each equal to what
its step produced. Then a challenger trained from scratch for 300 iterations loses to version 2:
nothing is published, and a retrain.challenger_lost alert says which metric lost and by how much.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from genline import contract
from genline.alerts import read_alerts
from genline.fsutil import sha256_file
from genline.serving.registry import Registry
from genline.versioning import md5_file

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAYS = ("2026-11-27", "2026-11-28", "2026-11-29")  # the 3-day simulation: all built-in digits
WEAK_ITERATIONS = 300  # passes the gate (fd_ratio ~2.1), far from the ci preset's ~1.0


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("loop-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENLINE_HOME", str(home))
        mp.setenv("GENLINE_NOW", "2026-12-01T12:00:00Z")
        mp.delenv("KFP_HOST", raising=False)
        mp.delenv("GENLINE_PREDLOG_DIR", raising=False)
        yield home


@pytest.fixture(scope="module")
def triton(home, tmp_path_factory):
    """A real Triton on free loopback ports logging predictions under GENLINE_HOME."""
    from genline.serving import server as srv
    from tests.integration.serving.conftest import make_served

    # the serving tests' server (the committed config, free ports), its run dir (where publish
    # finds the admin token) and prediction log under GENLINE_HOME
    served = make_served(tmp_path_factory.mktemp("loop-triton"))
    cfg = replace(served.cfg, run_dir=home / "run", predlog_dir=home / "predictions")
    srv.start(cfg)
    try:
        yield cfg
    finally:
        srv.stop(cfg.resolved_run_dir())


def _version_the_data(home: Path):
    """Ingest the simulated days and version their union, as the data assets do."""
    from genline.ingest import BatchStore, build_training_dataset, deliver_simulated, ingest_batch
    from genline.lineage_record import batch_records
    from genline.npzfiles import save_npz
    from genline.versioning import DvcConfig, record_dataset_file

    store = BatchStore(home)
    outcomes = {}
    for day in DAYS:
        assert deliver_simulated(store, day, start_date=DAYS[0], days=len(DAYS)) is not None
        outcomes[day] = ingest_batch(store, day)
        assert outcomes[day].accepted, outcomes[day].result.summary()
    ds = build_training_dataset(store)
    staging = save_npz(ds, home / "staging" / "training_dataset.npz")
    info = {**ds.info(), "accepted_days": list(DAYS), "batches": batch_records(home, list(DAYS))}
    cfg = DvcConfig.default(home)
    version, _, _ = record_dataset_file(cfg, staging, home / "datasets", info, "3 days")
    return cfg, version, outcomes


def _traffic(url: str, version: int, home: Path) -> None:
    """App requests answered by `version`, waited for until compacted into an hour partition."""
    from genline.client import GenlineClient
    from genline.lineage_report import served_partitions

    with GenlineClient(url) as client:
        for seed in range(4):
            assert client.generate([seed, 9 - seed], seed=seed).model_version == version
    for _ in range(120):  # the server seals and compacts its segment every few seconds
        parts = served_partitions(contract.MODEL_NAME, version)["value"]
        if sum(p["app_ok_rows"] for p in parts) >= 8:  # not just publish's profile probes
            return
        time.sleep(0.5)
    pytest.fail(f"version {version}'s requests never reached a compacted partition")


@pytest.fixture(scope="module")
def line(home, triton):
    """The data version, and version 1 (weak, gated) serving from it."""
    from genline.export import ExportConfig
    from genline.npzfiles import load_npz
    from genline.serving.publish import Target, publish
    from genline.train import preset
    from genline.versioning import checkout
    from genline.workflow import run_training

    dvc, data_version, outcomes = _version_the_data(home)
    npz = home / "v1-data" / "training_dataset.npz"
    checkout(dvc, data_version.md5, npz)
    weak = home / "v1-model"
    result = run_training(load_npz(npz), "ci", weak, progress=False,
                          train_cfg=preset("ci", iterations=WEAK_ITERATIONS),
                          export_cfg=ExportConfig(try_int8=False))
    assert result.gate_passed, result.gate_reasons
    target = Target(repository=triton.repository, url=triton.grpc_url)
    assert publish(weak, target, training_data=npz).version == 1
    _traffic(triton.grpc_url, 1, home)
    return {"dvc": dvc, "data_version": data_version, "outcomes": outcomes, "weak": weak,
            "weak_metrics": result.metrics}


def test_a_drift_retrain_through_dagster_wins_publishes_and_shows_every_lineage_link(
    home, triton, line
):
    from dagster_project.defs.resources import DvcRemoteResource, GenlineStateResource
    from dagster_project.defs.training import (
        CHALLENGER_TAG,
        GATE_CHECK,
        KubeflowPipelinesResource,
        generator_model,
    )
    from genline.cli import cli
    from genline.drift_verdicts import Verdict, record_verdict
    from genline.train import preset

    data_version = line["data_version"]
    report_html = home / "drift" / "reports" / "staleness-v1.html"
    report_html.parent.mkdir(parents=True)
    report_html.write_text("<html>staleness</html>")
    stale = Verdict("staleness", "drift", contract.MODEL_NAME, 1, "2026-12-01-11", 1.0, 2.0, 400,
                    scores={"mmd2_excess": 0.4}, drifted=["mmd2_excess"],
                    report=str(report_html))
    record_verdict(stale)
    trigger = {"kind": "drift", "monitor": "staleness", "window_key": stale.window_key,
               "model": stale.model, "version": stale.version, "report": stale.report,
               "scores": stale.scores}
    config = {"try_int8": False, "publish": True, "model_repository": str(triton.repository),
              "triton_url": triton.grpc_url, "preset": "finetune", "init_from": "serving",
              "champion_version": "serving", "trigger": json.dumps(trigger)}

    (home / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(home / "dagster_home")) as instance:
        result = dg.materialize(
            [generator_model],
            instance=instance,
            resources={
                "kubeflow": KubeflowPipelinesResource(),
                "genline_state": GenlineStateResource(home=str(home)),
                "dvc_remote": DvcRemoteResource(),
            },
            run_config={"ops": {"generator_model": {"config": config}}},
        )
        assert result.success
        tags = instance.get_run_by_id(result.run_id).tags
    (mat,) = result.asset_materializations_for_node("generator_model")
    md = {k: v.value for k, v in mat.metadata.items()}

    # the asset ran the Kubeflow pipeline on the current data version, restored bit for bit
    assert md["kfp_mode"] == "local" and md["kfp_state"] == "SUCCEEDED"
    assert md["kfp_run_id"].startswith("local-")
    assert md["dataset_version"] == data_version.md5
    run_dir = Path(md["kfp_outputs"])
    assert md5_file(run_dir / "validate-dataset" / "dataset") == data_version.md5
    # warm-started from the serving version, fine-tuned with the finetune preset
    assert md["train"]["init_from"] == "serving"
    assert md["train"]["init_from_dir"] == str(line["weak"].resolve())
    assert md["train"]["iterations"] == preset("finetune").iterations
    # champion/challenger: the serving version was re-scored on this data and lost
    assert md["challenger"] == "won" and tags[CHALLENGER_TAG] == "won", md["challenger_summary"]
    assert md["gate_passed"] is True and md["gate_reasons"] == ""
    model_dir = Path(md["model_dir"])
    gate = json.loads((model_dir / contract.GATE).read_text())
    fd = gate["checks"]["champion:fd_ratio"]
    assert fd["passed"] and fd["value"] <= fd["champion"] * 0.98
    assert fd["champion"] == pytest.approx(line["weak_metrics"]["fd_ratio"], rel=0.25)
    for name in (contract.CHECKPOINT, contract.METRICS, contract.GATE, contract.ONNX_FP32,
                 contract.EXPORT_REPORT, contract.SAMPLES_PNG, contract.DATASET_INFO):
        assert (model_dir / name).is_file(), name
    metrics = json.loads((model_dir / contract.METRICS).read_text())
    assert md["fd_ratio"] == pytest.approx(metrics["fd_ratio"])
    assert Path(md["sample_grid"]).is_file() and "data:image/png;base64," in md["samples"]
    assert md["tensorrt"]["built"] is False  # CPU target: skipped with its reason
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == GATE_CHECK and check.passed

    # published: version 2 serves, with its staleness baseline from the pipeline's data
    assert md["published_version"] == 2, md
    entry = Registry().entry(triton.repository, contract.MODEL_NAME)
    assert entry["serving"] == 2
    lineage = entry["versions"]["2"]["lineage"]
    assert lineage["model_dir"] == str(model_dir)
    assert "staleness_baseline_error" not in lineage, lineage.get("staleness_baseline_error")
    baseline = json.loads(Path(lineage["staleness_baseline"]).read_text())
    assert baseline["dataset"]["fingerprint"] == metrics["dataset_fingerprint"]
    _traffic(triton.grpc_url, 2, home)
    record_verdict(Verdict("serving_health", "no_drift", contract.MODEL_NAME, 2, "2026-12-01-12",
                           2.0, 3.0, 300))

    out = CliRunner().invoke(cli, ["lineage", "2", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    links = {link["link"]: link for link in report["links"]}
    not_there = {k: v["reason"] for k, v in links.items() if v["status"] not in
                 ("recorded", "read live")}
    assert not not_there, not_there
    # each link is what the step that made it produced
    assert links["data_version"]["value"]["dvc_md5"] == data_version.md5 == md["dataset_version"]
    assert links["data_version"]["value"]["git_commit"] == data_version.commit
    batches = links["batches"]["value"]
    assert [b["day"] for b in batches] == list(DAYS)
    outcomes = line["outcomes"]
    assert [b["delivery_sha256"] for b in batches] == [outcomes[d].delivery_sha256 for d in DAYS]
    assert all(b["status"] == "accepted" and b["success"] for b in batches)
    assert links["dagster_run"]["value"]["run_id"] == result.run_id
    assert links["kubeflow_run"]["value"]["run_name"] == run_dir.name
    assert not links["kubeflow_run"]["value"]["run_id"].startswith("{{")
    assert links["checkpoint"]["value"]["sha256"] == sha256_file(model_dir / contract.CHECKPOINT)
    served = triton.repository / contract.MODEL_NAME / "2" / contract.ONNX_FP32
    assert links["onnx"]["value"]["sha256"] == sha256_file(served) == md["onnx_sha256"]
    assert links["triton_version"]["value"]["version"] == 2
    assert links["triton_version"]["value"]["previous"] == 1
    assert links["trigger"]["value"] == trigger
    parts = links["served_partitions"]["value"]
    assert sum(p["app_ok_rows"] for p in parts) == 8  # 4 requests of 2; probes are not app rows
    assert [d["window_key"] for d in links["drift_reports"]["value"]] == ["2026-12-01-12"]
    table = CliRunner().invoke(cli, ["lineage", "2"]).output
    print(table)
    assert f"drift: staleness window {stale.window_key}" in table
    # version 1 was published by hand (genline.serving.publish): no pipeline record, and the
    # command says so by name instead of inventing links
    v1 = CliRunner().invoke(cli, ["lineage", "1", "--json"])
    assert v1.exit_code != 0 and "no lineage record" in v1.output


def test_a_losing_challenger_does_not_publish_and_alerts(home, triton, line):
    from pipelines.run import run_local

    serving = Registry().serving(triton.repository, contract.MODEL_NAME)
    assert serving == 2  # the winner of the test above
    before = len(read_alerts())
    drift = {"kind": "drift", "window_key": "2026-12-01-13", "model": contract.MODEL_NAME,
             "version": serving, "report": "", "scores": {"mmd2_excess": 0.3}}
    r = run_local({"dataset_version": line["data_version"].md5,
                   "dvc_repo": str(line["dvc"].repo_dir),
                   "model_repository": str(triton.repository), "triton_url": triton.grpc_url,
                   "preset": "ci", "iterations": WEAK_ITERATIONS, "champion_version": "serving",
                   "publish": True, "try_int8": False, "dagster_run_id": "dagster-run-1",
                   "trigger": json.dumps(drift)})
    assert r.state == "SUCCEEDED", r.summary()  # losing is an outcome, not a failed run
    assert r.gate_passed is False and "publish-model" not in r.tasks
    assert r.artifact("train-generator", "model")["metadata"]["iterations"] == WEAK_ITERATIONS
    md = r.artifact("evaluate-generator", "scored_model")["metadata"]
    assert md["challenger"] == "lost", md  # it passes every floor, yet is worse
    (fd,) = [x for x in md["champion_losses"] if x["metric"] == "fd_ratio"]
    assert fd["value"] > fd["champion"] and fd["relative_change"] > 0
    # the champion was re-scored on this data: its number is in the challenger's metrics.json
    metrics = json.loads((Path(r.model_dir) / contract.METRICS).read_text())
    assert metrics["champion"]["fd_ratio"] == pytest.approx(fd["champion"])
    assert math.isfinite(metrics["champion"]["fd_ratio"])
    alerts = [a for a in read_alerts()[before:] if a["kind"] == "retrain.challenger_lost"]
    assert len(alerts) == 1, read_alerts()[before:]
    assert "fd_ratio" in alerts[0]["summary"] and "vs champion" in alerts[0]["summary"]
    assert alerts[0]["details"]["trigger"]["window_key"] == drift["window_key"]
    assert Registry().serving(triton.repository, contract.MODEL_NAME) == 2  # nothing changed
    print(f"\nlosing run: {r.seconds:.1f} s, fd_ratio {fd['value']:.3f} vs champion "
          f"{fd['champion']:.3f}")
