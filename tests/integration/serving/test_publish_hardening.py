"""Publish against a real Triton: idempotence, crash safety (SIGKILL at named points), class sets,
mixed model directories.

One Triton for the module; each test publishes under its own model name (its own config.pbtxt
in the shared repository and its own registry entry), so tests cannot see each other's versions.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx_fixture
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from genline import contract
from genline.fsutil import read_json
from genline.netutil import free_port
from genline.serving import repository as repo_mod
from genline.serving import server as srv
from genline.serving.config import write_configs
from genline.serving.publish import PublishError, Target, publish, rollback
from genline.serving.registry import Registry

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
GENLINE = str(Path(sys.executable).parent / "genline")
KILL_POINTS = [
    "publish.after_stage",
    "publish.after_rename",
    "publish.after_load",
    "publish.after_canary",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A Triton of this module's own; its state paths are the defaults under GENLINE_HOME=home,
    so `genline publish` run with that GENLINE_HOME targets the same registry and profiles."""
    base = tmp_path_factory.mktemp("publish_triton")
    home, repo = base / "home", base / "repo"
    write_configs(repo)  # the server starts with the default model (no versions yet)
    ports = set()
    while len(ports) < 3:
        ports.add(free_port())
    http, grpc, metrics = sorted(ports)
    cfg = srv.ServerConfig(
        repository=repo,
        http_port=http,
        grpc_port=grpc,
        metrics_port=metrics,
        run_dir=home / "run",
        predlog_dir=home / "predictions",
    )
    srv.start(cfg)
    target = Target(
        repository=repo,
        url=cfg.grpc_url,
        run_dir=home / "run",
        registry_path=home / "serving" / "registry.json",
        profile_dir=home / "serving" / "profiles",
        alert_dir=home / "alerts",
    )
    yield target, home
    srv.stop(cfg.resolved_run_dir(), timeout_s=10)


def target_for(server, name: str) -> Target:
    """A target for model `name`: its config written into the module's repository."""
    target, _ = server
    write_configs(target.repository, model_name=name)
    return replace(target, model=name)


def unpinned_version(target: Target, label: int = 1) -> int:
    client = grpcclient.InferenceServerClient(target.url)
    try:
        inputs = [
            grpcclient.InferInput(contract.INPUT_LABEL, [1, 1], "INT64"),
            grpcclient.InferInput(contract.INPUT_Z, [1, 64], "FP32"),
        ]
        inputs[0].set_data_from_numpy(np.full((1, 1), label, np.int64))
        inputs[1].set_data_from_numpy(np.zeros((1, 64), np.float32))
        return int(client.infer(target.model, inputs).get_response().model_version)
    finally:
        client.close()


def loaded(target: Target) -> list[int]:
    client = grpcclient.InferenceServerClient(target.url)
    try:
        meta = client.get_model_metadata(target.model, as_json=True)
        return sorted(int(v) for v in meta["versions"] if client.is_model_ready(target.model, v))
    finally:
        client.close()


def assert_consistent(target: Target, serving: int) -> None:
    """One record of every version on disk, none left "staged", `serving` answers, no litter."""
    repo, registry = Path(target.repository), Registry(target.registry_path)
    entry = registry.entry(repo, target.model)
    assert entry["serving"] == serving
    assert entry["versions"][str(serving)]["state"] == "serving"
    assert registry.in_state(repo, target.model, "staged") == []
    assert set(repo_mod.versions(repo, target.model)) <= registry.known_versions(repo, target.model)
    assert repo_mod.staging_leftovers(repo) == []
    assert unpinned_version(target) == serving


def run_killed(target: Target, model_dir: Path, point: str) -> None:
    """`publish` in a child process that SIGKILLs itself at `point`."""
    args = {k: str(v) for k, v in target.__dict__.items() if v is not None}
    code = (
        "import json, sys\n"
        "from genline.serving.publish import Target, publish\n"
        "a = json.loads(sys.argv[1])\n"
        "publish(sys.argv[2], Target(repository=a['repository'], url=a['url'], model=a['model'],"
        " run_dir=a['run_dir'], registry_path=a['registry_path'],"
        " profile_dir=a['profile_dir'], alert_dir=a['alert_dir']))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args), str(model_dir)],
        env={**os.environ, "GENLINE_KILL_AT": point},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == -signal.SIGKILL, (res.returncode, res.stderr[-2000:])


def test_publishing_the_same_directory_twice_is_idempotent(server, model_dir, tmp_path):
    target = target_for(server, "idempotent")
    first = publish(model_dir, target)
    again = publish(model_dir, target)
    assert first.created and first.version == 1
    assert not again.created and again.version == 1 and again.previous == 1
    assert again.lineage["onnx_sha256"] == first.lineage["onnx_sha256"]
    assert repo_mod.versions(target.repository, target.model) == [1]
    events = Registry(target.registry_path).entry(target.repository, target.model)["events"]
    assert [e["event"] for e in events] == ["staged", "published", "publish_unchanged"]

    # a newer model serves; publishing the first again makes it serve, as a new version
    newer = onnx_fixture.copy_model_dir(model_dir, tmp_path / "newer", tag="newer")
    assert publish(newer, target).version == 2
    back = publish(model_dir, target)
    assert back.created and back.version == 3 and back.previous == 2
    assert back.lineage["republished_from"] == 1
    assert back.lineage["onnx_sha256"] == first.lineage["onnx_sha256"]
    registry = Registry(target.registry_path)
    assert registry.version_info(target.repository, target.model, 1)["state"] == "standby"
    assert_consistent(target, 3)
    assert not publish(model_dir, target).created  # and that one is now the no-op


@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_during_first_publish_then_rerun(point, server, model_dir):
    target = target_for(server, "crash_" + point.split(".")[1])
    repo, registry = Path(target.repository), Registry(target.registry_path)
    run_killed(target, model_dir, point)
    assert registry.in_state(repo, target.model, "staged") == [1]
    renamed = point != "publish.after_stage"
    assert repo_mod.versions(repo, target.model) == ([1] if renamed else [])
    assert bool(repo_mod.staging_leftovers(repo)) == (not renamed)
    if point in ("publish.after_load", "publish.after_canary"):
        assert loaded(target) == [1]  # Triton serves a version whose publish never finished

    res = publish(model_dir, target)
    assert res.created and res.version == 2 and res.previous is None
    assert res.reconciled and "interrupted" in " ".join(res.reconciled)
    assert repo_mod.versions(repo, target.model) == [2]  # exactly one version
    assert repo_mod.quarantined(repo, target.model) == ([1] if renamed else [])
    info = registry.version_info(repo, target.model, 1)
    assert info["state"] == "quarantined" and "interrupted" in info["reason"]
    assert_consistent(target, 2)
    assert loaded(target) == [2]


def test_sigkill_after_load_with_a_previous_version(server, model_dir, tmp_path):
    """The killed publish left Triton answering from the unverified version 2; the next publish
    (here the serving model again: a no-op) quarantines it first, so version 1 serves again."""
    target = target_for(server, "crash_previous")
    assert publish(model_dir, target).version == 1
    newer = onnx_fixture.copy_model_dir(model_dir, tmp_path / "newer", tag="newer")
    run_killed(target, newer, "publish.after_load")
    assert unpinned_version(target) == 2
    res = publish(model_dir, target)
    assert not res.created and res.version == 1 and res.reconciled
    assert repo_mod.versions(target.repository, target.model) == [1]
    assert repo_mod.quarantined(target.repository, target.model) == [2]
    assert_consistent(target, 1)
    with pytest.raises(PublishError, match="no previous version"):
        rollback(target)  # version 2 is gone for good: nothing to roll back to


def test_unrecorded_version_directory_is_quarantined(server, model_dir):
    """A version dir the registry never heard of (copied in by hand) never serves."""
    target = target_for(server, "unrecorded")
    assert publish(model_dir, target).version == 1
    mdir = repo_mod.model_dir(target.repository, target.model)
    shutil.copytree(mdir / "1", mdir / "7")
    res = publish(model_dir, target)
    assert not res.created and "version directory 7 has no record" in " ".join(res.reconciled)
    assert repo_mod.versions(target.repository, target.model) == [1]
    assert 7 in repo_mod.quarantined(target.repository, target.model)
    assert_consistent(target, 1)


def cli_publish(server, model_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    target, home = server
    return subprocess.run(
        [
            GENLINE,
            "publish",
            "--model",
            str(model_dir),
            "--repository",
            str(target.repository),
            "--url",
            target.url,
            *extra,
        ],
        env={**os.environ, "GENLINE_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_class_change_needs_the_flag(server, model_dir, tmp_path):
    target, _ = server  # the default model name: the CLI publishes that one
    res = cli_publish(server, model_dir)
    assert res.returncode == 0, res.stderr
    registry = Registry(target.registry_path)
    serving = registry.serving(target.repository, target.model)
    classes = read_json(model_dir / contract.EXPORT_REPORT)["classes"]
    assert len(classes) == 10

    two = onnx_fixture.copy_model_dir(model_dir, tmp_path / "two", tag="two", classes=["a", "b"])
    n_versions = registry.known_versions(target.repository, target.model)
    res = cli_publish(server, two)
    assert res.returncode != 0
    assert (
        f"classes ['a', 'b'] differ from serving version {serving}'s ['0', '1', '2', ..., "
        f"'9'] (10 classes)" in res.stderr
    )
    assert "--allow-class-change" in res.stderr
    assert registry.known_versions(target.repository, target.model) == n_versions  # no number
    assert repo_mod.staging_leftovers(target.repository) == []
    assert unpinned_version(target, label=7) == serving

    res = cli_publish(server, two, "--allow-class-change")
    assert res.returncode == 0, res.stderr
    now = registry.serving(target.repository, target.model)
    assert now > serving and f"version {now} is serving" in res.stdout
    lineage = registry.version_info(target.repository, target.model, now)["lineage"]
    assert lineage["classes"] == ["a", "b"] and lineage["class_change_allowed_over"] == serving
    assert unpinned_version(target, label=1) == now
    with pytest.raises(InferenceServerException, match="outside the trained classes 0-1"):
        unpinned_version(target, label=7)  # the served version knows it has two classes


def test_mixed_directory_is_refused_and_nothing_is_published(server, model_dir, tmp_path):
    target = target_for(server, "mixed")
    assert publish(model_dir, target).version == 1
    mixed = onnx_fixture.copy_model_dir(model_dir, tmp_path / "mixed", tag="mixed")
    other = onnx_fixture.stamp_model_dir(
        onnx_fixture.copy_model_dir(model_dir, tmp_path / "other"), run_id="another-run"
    )
    shutil.copy(other / contract.GATE, mixed / contract.GATE)
    with pytest.raises(PublishError, match="different training runs.*gate.json: another-run"):
        publish(mixed, target)
    assert Registry(target.registry_path).known_versions(target.repository, target.model) == {1}
    assert_consistent(target, 1)
    lineage = Registry(target.registry_path).version_info(target.repository, target.model, 1)
    stamps = read_json(model_dir / contract.METRICS)
    assert lineage["lineage"]["run_id"] == stamps[contract.RUN_ID_KEY]
    assert lineage["lineage"]["checkpoint_sha256"] == stamps[contract.CHECKPOINT_SHA256_KEY]
