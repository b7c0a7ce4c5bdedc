"""The code location loads; a module added to defs/ joins it without editing definitions.py."""

from __future__ import annotations

import dagster as dg
import pytest

from genline.validation import ADVISORY_CHECKS, CHECK_NAMES

pytestmark = pytest.mark.integration


def test_location_contents(defs):
    from dagster_project.defs.partitions import PARTITIONS_START_DATE, partition_keys

    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert {"incoming_batch", "training_dataset"} <= keys
    checks = {(c.asset_key.to_user_string(), c.name) for c in repo.asset_graph.asset_check_keys}
    assert {("incoming_batch", n) for n in CHECK_NAMES} <= checks
    assert ("training_dataset", "training_dataset_restorable") in checks
    # validity checks block (a failing batch is quarantined); the input-drift comparison with the
    # training data only warns: a valid batch of a new style is accepted and flagged
    advisory = {("incoming_batch", n) for n in ("batch_matches_training_data", *ADVISORY_CHECKS)}
    assert advisory <= checks
    for k in repo.asset_graph.asset_check_keys:
        name = (k.asset_key.to_user_string(), k.name)
        if name[0] in ("incoming_batch", "training_dataset"):
            assert repo.asset_graph.get_check_spec(k).blocking == (name not in advisory), name
    assert {"serving_health_drift", "request_mix_drift", "staleness_drift"} <= keys
    jobs = {j.name for j in repo.get_all_jobs()}
    assert {"ingest_job", "training_dataset_job"} <= jobs
    assert {s.name for s in repo.schedule_defs} >= {
        "daily_ingest_schedule",
        "daily_training_dataset_schedule",
    }
    assert {s.name for s in repo.sensor_defs} >= {
        "incoming_delivery_sensor",
        "run_failure_alert_sensor",
        "drift_retrain_sensor",
    }
    parts = repo.get_job("ingest_job").partitions_def
    assert parts.get_first_partition_key() == PARTITIONS_START_DATE
    # the last partition is yesterday by genline.clock (pinned in conftest), not Dagster's clock
    assert partition_keys()[-1] == "2026-11-28" and partition_keys(3)[0] == "2026-11-26"


def test_a_new_defs_module_is_picked_up(tmp_path, monkeypatch):
    import importlib
    import shutil
    from pathlib import Path

    import dagster_project

    # A copy of the code location under another package name, so the module added to its defs/
    # folder never shows up in the working tree that other tests load.
    copy = tmp_path / "probe_location"
    shutil.copytree(
        Path(dagster_project.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__")
    )
    toml = (copy / "dg.toml").read_text().replace('"dagster_project', '"probe_location')
    (copy / "dg.toml").write_text(toml)
    extra = copy / "defs"
    (extra / "zz_probe.py").write_text(  # a resource, as resources.py provides them
        "import dagster as dg\n\n"
        "class Probe(dg.ConfigurableResource):\n    value: str = 'x'\n\n"
        "@dg.definitions\n"
        "def probe_resources():\n    return dg.Definitions(resources={'probe': Probe()})\n"
    )
    (extra / "zz_downstream.py").write_text(
        "import dagster as dg\n\n"
        "from .zz_probe import Probe\n\n"
        "@dg.asset(deps=['training_dataset'])\n"
        "def downstream_model(probe: Probe) -> None:\n    '''Uses the dataset.'''\n\n"
        "downstream_job = dg.define_asset_job('downstream_job',\n"
        "    selection=dg.AssetSelection.assets('downstream_model'))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    build_definitions = importlib.import_module("probe_location.definitions").defs
    loc = build_definitions().get_repository_def()
    assert dg.AssetKey("downstream_model") in loc.asset_graph.get_all_asset_keys()
    assert "downstream_job" in {j.name for j in loc.get_all_jobs()}
    assert "probe" in loc.get_top_level_resources()
    parents = loc.asset_graph.get(dg.AssetKey("downstream_model")).parent_keys
    assert parents == {dg.AssetKey("training_dataset")}


def test_the_monitors_and_the_retrain_policy_read_one_model_repository(tmp_path, monkeypatch):
    """GENLINE_MODEL_REPOSITORY points the drift monitors (which read the served versions'
    serving.json, evaluator and embedding) and the retrain policy at the same repository."""
    from dagster_project.definitions import defs as build

    def resolved():  # as a run gets them: EnvVar values read now
        defs = build().get_repository_def().get_top_level_resources()
        wanted = {k: defs[k] for k in ("drift_monitor", "retrain_policy")}
        with dg.build_resources(wanted) as res:
            return str(res.drift_monitor.paths().repository), res.retrain_policy.repository()

    repo = tmp_path / "elsewhere" / "triton_repo"
    monkeypatch.setenv("GENLINE_MODEL_REPOSITORY", str(repo))
    assert resolved() == (str(repo), str(repo))
    monkeypatch.delenv("GENLINE_MODEL_REPOSITORY")
    assert resolved()[0] == "triton_repo"
