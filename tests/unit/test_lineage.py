"""Lineage records: written by the real functions each step calls, read back by `genline lineage`.

The DVC version, the ingest of a batch, the serving registry, the prediction log (spool +
compaction) and the drift verdicts are all the real thing, in a temporary state directory; only
the model directory is a minimal stand-in (its two stamp files), since publish itself is covered
by the integration test that runs the pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from genline import contract
from genline.cli import cli
from genline.drift_verdicts import Verdict, record_verdict
from genline.fsutil import atomic_write_json
from genline.lineage_record import (
    NOT_RECORDED,
    RECORDED,
    LineageError,
    batch_records,
    record_publish,
)
from genline.lineage_report import format_table, lineage_report, read_record
from genline.npzfiles import save_npz
from genline.serving.registry import Registry

MODEL = contract.MODEL_NAME
T0 = 1_796_000_000.0  # 2026-11-30T00:53:20Z: fixed epoch times for the logged requests


@pytest.fixture()
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("GENLINE_HOME", str(home))
    monkeypatch.setenv("GENLINE_NOW", "2026-12-01T12:00:00Z")
    monkeypatch.delenv("GENLINE_PREDLOG_DIR", raising=False)
    return home


def _model_dir(path: Path, fingerprint: str) -> Path:
    path.mkdir(parents=True)
    atomic_write_json(path / contract.DATASET_INFO, {"fingerprint": fingerprint, "source": "x"})
    atomic_write_json(
        path / contract.EXPORT_REPORT,
        {
            contract.RUN_ID_KEY: "trainrun1",
            contract.CHECKPOINT_SHA256_KEY: "c" * 64,
            "files": {contract.ONNX_FP32: "a" * 64},
        },
    )
    return path


def _published(home: Path, repo: Path, version: int, model_dir: Path) -> None:
    """The registry entry publish writes when `version` starts serving."""
    lineage = {
        "model_dir": str(model_dir),
        "run_id": "trainrun1",
        "checkpoint_sha256": "c" * 64,
        "onnx_sha256": "a" * 64,
        "serving_variant": contract.ONNX_FP32,
        "published_at": "2026-12-01T11:00:00+00:00",
        "reference_profile": str(home / "serving" / "profiles" / f"{version}.json"),
    }
    Registry().record(
        repo, MODEL, "published", version, serving=version, state="serving", lineage=lineage
    )


@pytest.fixture()
def versioned(home, tmp_path):
    """A real ingest of one simulated day and a real DVC version of it (as training_dataset)."""
    from genline.ingest import BatchStore, build_training_dataset, deliver_simulated, ingest_batch
    from genline.versioning import DvcConfig, commit_dataset

    store = BatchStore(home)
    day = "2026-11-20"
    assert deliver_simulated(store, day, start_date="2026-11-20", days=3) is not None
    outcome = ingest_batch(store, day)
    assert outcome.accepted, outcome.result.summary()
    ds = build_training_dataset(store)
    npz = save_npz(ds, tmp_path / "training_dataset.npz")
    info = {
        **ds.info(),
        "accepted_days": [day],
        "batches": batch_records(store.root, [day]),
        "dagster_run": "dagster-run-that-versioned",
    }
    version, _ = commit_dataset(DvcConfig.default(home), npz, info, "test version")
    return version, outcome, ds


def _serve_log(home: Path, version: int, rows: list[tuple[str, str]]) -> None:
    """Log requests as the backend does (spool), then compact them into hour partitions."""
    from genline.serving.spool import SpoolWriter
    from genline.serving.store import compact

    predlog = home / "predictions"
    writer = SpoolWriter(predlog, {"model": MODEL, "version": version, "instance": "t"},
                         compact=False)
    for i, (rid, status) in enumerate(rows):
        rec = {"request_id": rid, "time": T0 + 3600 * (i % 2), "version": version,
               "status": status}
        if status == "OK":
            rec.update(label=[3], z_mean=[0.0], z_std=[1.0], z_norm=[8.0])
        writer.write(rec)
    writer.close(compact_now=False)
    compact(predlog)


def test_every_link_recorded_and_read_back(home, tmp_path, versioned):
    version, outcome, ds = versioned
    repo = tmp_path / "repo"
    md = _model_dir(tmp_path / "model", ds.fingerprint)
    _published(home, repo, 2, md)
    trigger = {
        "kind": "drift",
        "monitor": "staleness",
        "window_key": "2026-12-01-10:00",
        "model": MODEL,
        "version": 1,
        "report": str(home / "drift" / "reports" / "w.html"),
        "scores": {"label=3/mean_intensity": 0.31},
    }
    path = record_publish(
        model_dir=md,
        model_repository=repo,
        version=2,
        previous=1,
        dagster_run_id="dagster-run-42",
        trigger=trigger,
        dataset_md5=version.md5,
        dataset_commit=version.commit,
        kfp_run_id="kfp-uuid-7",
        kfp_run_name="genline-training-2026-12-01",
    )
    assert path == home / "lineage" / MODEL / "2.json"

    _serve_log(home, 2, [("app-1", "OK"), ("genline-canary-1", "OK"), ("app-2", "OK"),
                         ("app-3", "ERROR")])
    _serve_log(home, 1, [("app-old", "OK")])  # another version's rows are not this one's
    report_html = tmp_path / "serving.html"
    report_html.write_text("<html></html>")
    for v in (1, 2):
        record_verdict(Verdict("serving_health", "no_drift", MODEL, v, f"w{v}", T0, T0 + 60, 50,
                               report=str(report_html)))

    report = lineage_report(2)
    links = {link["link"]: link for link in report["links"]}
    assert [link["link"] for link in report["links"]] == [
        "data_version", "batches", "dagster_run", "kubeflow_run", "checkpoint", "onnx",
        "triton_version", "trigger", "served_partitions", "drift_reports",
    ]
    assert all(link["status"] == RECORDED for link in report["links"][:8]), report["links"]
    data = links["data_version"]["value"]
    assert (data["dvc_md5"], data["git_commit"]) == (version.md5, version.commit)
    assert data["num_rows"] == len(ds) and data["versioned_by_dagster_run"] == (
        "dagster-run-that-versioned"
    )
    (batch,) = links["batches"]["value"]
    assert batch["day"] == outcome.day and batch["status"] == "accepted" and batch["success"]
    assert batch["delivery_sha256"] == outcome.delivery_sha256
    assert batch["passed"] == batch["checks"] == len(outcome.result.checks)
    assert links["dagster_run"]["value"] == {"run_id": "dagster-run-42"}
    assert links["kubeflow_run"]["value"]["run_id"] == "kfp-uuid-7"
    assert links["checkpoint"]["value"] == {"sha256": "c" * 64, "training_run_id": "trainrun1"}
    assert links["onnx"]["value"]["sha256"] == "a" * 64
    assert links["triton_version"]["value"]["version"] == 2
    assert links["triton_version"]["value"]["previous"] == 1
    assert links["trigger"]["value"] == trigger
    # live links: both hours of version 2, the canary and the error not counted as app traffic
    parts = links["served_partitions"]["value"]
    assert [p["partition"] for p in parts] == ["date=2026-11-30/hour=00", "date=2026-11-30/hour=01"]
    assert sum(p["rows"] for p in parts) == 4 and sum(p["app_ok_rows"] for p in parts) == 2
    (drift,) = links["drift_reports"]["value"]
    assert drift["window_key"] == "w2" and drift["report_exists"] is True

    table = format_table(report)
    for text in (version.md5, "dagster-run-42", "kfp-uuid-7", "c" * 64, "a" * 64,
                 "window 2026-12-01-10:00", "date=2026-11-30/hour=00", "serving_health w2"):
        assert text in table, text
    assert "not recorded" not in table

    out = CliRunner().invoke(cli, ["lineage", "2", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["links"][2]["value"]["run_id"] == "dagster-run-42"


def test_links_not_known_say_not_recorded_and_why(home, tmp_path):
    repo = tmp_path / "repo"
    md = _model_dir(tmp_path / "model", "f" * 16)
    _published(home, repo, 1, md)
    record_publish(model_dir=md, model_repository=repo, version=1, previous=None,
                   kfp_run_id="{{$.pipeline_job_uuid}}", trigger={"kind": "manual"})
    report = lineage_report(1)
    links = {link["link"]: link for link in report["links"]}
    assert links["data_version"]["status"] == NOT_RECORDED
    assert "did not train on a DVC dataset version" in links["data_version"]["reason"]
    assert links["data_version"]["value"] == {"fingerprint": "f" * 16}  # what is known stays
    assert "not launched by Dagster" in links["dagster_run"]["reason"]
    assert "placeholders were not resolved" in links["kubeflow_run"]["reason"]
    assert links["checkpoint"]["status"] == RECORDED  # known from the publish registry
    assert links["served_partitions"]["status"] == "none yet"
    assert links["drift_reports"]["status"] == "none yet"
    table = CliRunner().invoke(cli, ["lineage", "1"]).output
    assert "not recorded: the pipeline was not launched by Dagster" in table
    assert "none yet: no drift verdicts about version 1" in table


def test_a_data_version_of_other_data_is_not_recorded_as_the_models(home, tmp_path, versioned):
    version, _, _ = versioned
    repo = tmp_path / "repo"
    md = _model_dir(tmp_path / "model", "0123456789abcdef")  # trained on something else
    _published(home, repo, 1, md)
    record_publish(model_dir=md, model_repository=repo, version=1, dataset_md5=version.md5,
                   dataset_commit=version.commit)
    link = read_record(1)["links"][0]
    assert link["status"] == NOT_RECORDED
    assert "was trained on data with fingerprint 0123456789abcdef" in link["reason"]


def test_republishing_the_serving_version_keeps_its_first_record(home, tmp_path):
    repo = tmp_path / "repo"
    md = _model_dir(tmp_path / "model", "f" * 16)
    _published(home, repo, 1, md)
    record_publish(model_dir=md, model_repository=repo, version=1, previous=None,
                   dagster_run_id="first")
    record_publish(model_dir=md, model_repository=repo, version=1, previous=1,
                   dagster_run_id="second")
    assert read_record(1)["links"][2]["value"] == {"run_id": "first"}


def test_unknown_version_names_the_versions_with_a_record(home, tmp_path):
    repo = tmp_path / "repo"
    md = _model_dir(tmp_path / "model", "f" * 16)
    _published(home, repo, 3, md)
    record_publish(model_dir=md, model_repository=repo, version=3)
    with pytest.raises(LineageError, match=r"version 5 .*versions with a record: 3"):
        read_record(5)
    out = CliRunner().invoke(cli, ["lineage", "5"])
    assert out.exit_code == 1 and "no lineage record for genline_generator version 5" in out.output
    out = CliRunner().invoke(cli, ["lineage", "1", "--model", "../etc"])
    assert out.exit_code == 1 and "model name '../etc' refused" in out.output
