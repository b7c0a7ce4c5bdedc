"""The drift retrain sensor through the sensor daemon's own tick path, against a real instance.

Runs the sensor requests are submitted to Dagster's queued run coordinator and, with no run-queue
daemon here, stay QUEUED: they count as launched (the run key is taken) and nothing trains.
Dagster's clock is frozen per tick (the sensor's minimum interval is 60 s) and genline.clock is
pinned to the same instant, so nothing reads the wall clock.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest

from genline import clock, contract
from genline.alerts import read_alerts
from genline.data import load_builtin, make_dataset
from genline.drift_verdicts import Verdict, record_verdict
from genline.npzfiles import save_npz
from genline.serving.registry import Registry
from genline.versioning import DvcConfig, commit_dataset

from .conftest import PINNED_NOW, REPO_ROOT
from .retrain_daemon import DAGSTER_YAML, start_sensor, tick, workspace

pytestmark = pytest.mark.integration

T0 = datetime.fromisoformat(PINNED_NOW).timestamp()
HOUR = 3600.0
MODEL = contract.MODEL_NAME
EPISODE_TAG = "genline/retrain_episode"


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: Path):
    """A Dagster home with the queued (and killable) coordinator, a served version 1 trained on
    data A, and the policy pointed at this test's model repository."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    repo = tmp_path / "triton_repo"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("GENLINE_MODEL_REPOSITORY", str(repo))
    monkeypatch.setenv("GENLINE_RETRAIN_COOLDOWN_S", str(int(2 * HOUR)))
    monkeypatch.setenv("GENLINE_RETRAIN_MAX_RETRIES", "1")
    monkeypatch.delenv("GENLINE_KILL_AT", raising=False)
    builtin = load_builtin()
    data = {
        "A": make_dataset(builtin.images[:600], builtin.labels[:600], builtin.classes, "A"),
        "B": make_dataset(builtin.images, builtin.labels, builtin.classes, "B"),
    }
    model_dir = tmp_path / "model-v1"
    model_dir.mkdir()
    Registry().record(repo, MODEL, "published", 1, serving=1, state="serving",
                      lineage={"model_dir": str(model_dir),
                               "dataset_fingerprint": data["A"].fingerprint})
    with dg.DagsterInstance.get() as instance:
        yield {"instance": instance, "state": state, "data": data, "tmp": tmp_path}


def version_data(env, name: str) -> None:
    """Record dataset `name` as the next training_dataset version (a real git + DVC commit)."""
    ds = env["data"][name]
    path = save_npz(ds, env["tmp"] / f"{name}.npz")
    commit_dataset(DvcConfig.default(env["state"]), path, info=ds.info())


def verdict(hour: int, status: str = "drift", version: int = 1) -> None:
    start = T0 + hour * HOUR
    record_verdict(Verdict(
        monitor="staleness", status=status, model=MODEL, version=version,
        window_key=f"2026-11-29-{12 + hour:02d}:00", window_start=start,
        window_end=start + HOUR, n=800, scores={"label=3/emb_0": 0.31},
        thresholds={"label=3/emb_0": 0.1}, drifted=["label=3/emb_0"] if status == "drift" else [],
        reference="dataset B", report=f"/reports/staleness-{hour}.html",
        computed_at=start + HOUR))


def at(monkeypatch, hour: float) -> float:
    """Pin genline.clock to T0 + hour (Dagster's clock follows in `tick`)."""
    when = T0 + hour * HOUR
    monkeypatch.setenv(clock.ENV, datetime.fromtimestamp(when).astimezone().isoformat())
    return when


def retrain_runs(instance) -> list[dg.DagsterRun]:
    return [r for r in instance.get_runs() if EPISODE_TAG in r.tags]


def daemon_tick(context, monkeypatch, hour: float) -> None:
    tick(context, at(monkeypatch, hour))


def new_data_and_a_drifting_window(env):
    """Data A then B versioned (new data since the serving model's) and a drifting window at
    hour 1: the instance."""
    instance = env["instance"]
    version_data(env, "A")
    version_data(env, "B")
    verdict(1)
    return instance


def test_one_run_per_episode_over_several_drifting_windows(env, monkeypatch):
    instance = env["instance"]
    version_data(env, "A")
    version_data(env, "B")  # new accepted data since the serving model's
    with workspace(instance) as context:
        start_sensor(instance, context)
        daemon_tick(context, monkeypatch, 0)  # no verdicts yet
        assert retrain_runs(instance) == []
        for hour in (1, 2, 3):
            verdict(hour)
            daemon_tick(context, monkeypatch, hour + 1.1)
    (run,) = retrain_runs(instance)
    assert run.status == dg.DagsterRunStatus.QUEUED and run.job_name == "training_job"
    key = f"{MODEL}:v1:2026-11-29-13:00"  # the episode's FIRST drifting window
    assert run.tags["dagster/run_key"] == key and run.tags[EPISODE_TAG] == key
    assert run.tags["genline/drift_report"] == "/reports/staleness-1.html"
    assert json.loads(run.tags["genline/drift_scores"]) == {"label=3/emb_0": 0.31}
    config = run.run_config["ops"]["generator_model"]["config"]
    assert config["init_from"] == "serving" and config["champion_version"] == "serving"
    assert config["publish"] is True and config["preset"] == "finetune"
    trigger = json.loads(config["trigger"])
    assert trigger["kind"] == "drift" and trigger["episode"] == key
    assert trigger["window_key"] == "2026-11-29-13:00" and trigger["version"] == 1


def test_a_tick_killed_after_the_run_was_submitted_launches_no_second_run(env, monkeypatch):
    instance = new_data_and_a_drifting_window(env)
    with workspace(instance) as context:
        start_sensor(instance, context)
    when = at(monkeypatch, 2.1)
    killed = subprocess.run(
        [sys.executable, "-m", "tests.integration.dagster.retrain_daemon", str(when)],
        cwd=REPO_ROOT, env={**os.environ, "GENLINE_KILL_AT": "dagster.run_submitted"},
        capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    (run,) = retrain_runs(instance)  # submitted before the kill
    state = instance.get_instigator_state(*_sensor_ids(instance))
    assert not (state.instigator_data.cursor or "")  # the tick died before saving its cursor
    verdict(2)  # the episode goes on
    with workspace(instance) as context:
        daemon_tick(context, monkeypatch, 3.2)
        daemon_tick(context, monkeypatch, 3.4)
    assert [r.run_id for r in retrain_runs(instance)] == [run.run_id]
    state = instance.get_instigator_state(*_sensor_ids(instance))
    assert json.loads(state.instigator_data.cursor)["verdicts_until"] == T0 + 3 * HOUR


def _sensor_ids(instance):
    (state,) = [s for s in instance.all_instigator_state() if s.name == "drift_retrain_sensor"]
    return state.instigator_origin_id, state.selector_id


def test_cooldown_defers_the_next_episode_and_a_resolved_one_starts_a_new_key(env, monkeypatch):
    instance = env["instance"]
    version_data(env, "A")
    version_data(env, "B")
    with workspace(instance) as context:
        start_sensor(instance, context)
        verdict(1)
        daemon_tick(context, monkeypatch, 2.1)  # episode 1: run
        verdict(2, "no_drift")  # resolved ...
        verdict(3)  # ... and drifting again: a new episode, within the 2 h cooldown
        daemon_tick(context, monkeypatch, 3.5)
        assert len(retrain_runs(instance)) == 1
        daemon_tick(context, monkeypatch, 4.2)  # 2.1 h after the first request
    keys = sorted(r.tags[EPISODE_TAG] for r in retrain_runs(instance))
    assert keys == [f"{MODEL}:v1:2026-11-29-13:00", f"{MODEL}:v1:2026-11-29-15:00"]


def test_no_new_data_alerts_once_per_episode_and_launches_nothing(env, monkeypatch):
    instance = env["instance"]
    version_data(env, "A")  # only the data the serving model was trained on
    with workspace(instance) as context:
        start_sensor(instance, context)
        for hour in (1, 2):
            verdict(hour)
            daemon_tick(context, monkeypatch, hour + 1.1)
    assert retrain_runs(instance) == []
    alerts = [a for a in read_alerts() if a["kind"] == "retrain.no_new_data"]
    assert alerts, "no retrain.no_new_data alert"
    assert {a["dedup_key"] for a in alerts} == {
        f"retrain.no_new_data/{MODEL}/1/{MODEL}:v1:2026-11-29-13:00"}
    assert "there is no new data" in alerts[-1]["summary"]


def test_a_failed_retrain_is_retried_by_policy_then_given_up(env, monkeypatch):
    instance = new_data_and_a_drifting_window(env)
    with workspace(instance) as context:
        start_sensor(instance, context)
        daemon_tick(context, monkeypatch, 2.1)
        (first,) = retrain_runs(instance)
        instance.report_run_failed(first)  # the run failed (a step raised, a node died)
        daemon_tick(context, monkeypatch, 2.2)
        runs = retrain_runs(instance)
        assert len(runs) == 2
        retry = next(r for r in runs if r.run_id != first.run_id)
        assert retry.tags["dagster/run_key"] == f"{first.tags['dagster/run_key']}#retry1"
        assert retry.tags["genline/retrain_attempt"] == "1"
        instance.report_run_failed(retry)
        daemon_tick(context, monkeypatch, 2.3)  # max_retries 1: given up
    assert len(retrain_runs(instance)) == 2
