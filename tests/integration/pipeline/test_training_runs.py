"""The training pipeline for real: data-parallel training, kfp.local runs, the Dagster asset.

One genline state directory is shared by the tests of this module so the evaluator (trained
once per dataset fingerprint) is trained only once.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import dagster as dg
import pytest

from genline import contract
from genline.alerts import read_alerts
from genline.data import load_builtin, save_npz
from genline.distributed import DistributedConfig, train_distributed
from genline.evaluate import evaluate_model_dir
from genline.train import preset
from genline.versioning import DvcConfig, commit_dataset, md5_file

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("genline-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENLINE_HOME", str(home))
        mp.delenv("KFP_HOST", raising=False)
        yield home


@pytest.mark.slow
def test_two_processes_reach_the_same_gate_as_one(home, tmp_path):
    data = load_builtin()
    verdicts = {}
    for world in (1, 2):
        out = tmp_path / f"world{world}"
        # the same number of iterations for both, whatever the load on the machine
        cfg = preset("ci", max_seconds=900.0)
        # one thread per rank in both runs: a like-for-like comparison, and on a shared
        # 2-core machine the fastest setting (docs/benchmarks/pipeline.md)
        result = train_distributed(
            data,
            "ci",
            out,
            DistributedConfig(world_size=world, threads_per_rank=1),
            train_cfg=cfg,
        )
        assert result.iterations == cfg.iterations
        assert result.world_size == world
        info = json.loads((out / "train.json").read_text())
        assert info["world_size"] == world and info["iterations"] > 0
        metrics, gate = evaluate_model_dir(out, data)
        assert math.isfinite(metrics["fd_ratio"])
        verdicts[world] = (gate.passed, gate.reasons, metrics["fd_ratio"])
    assert verdicts[1][0] is True, f"1 process failed the gate: {verdicts[1]}"
    assert verdicts[2][0] is True, f"2 processes failed the gate: {verdicts[2]}"


def test_a_failing_step_fails_the_run_and_raises_an_alert(home):
    from pipelines.run import run_local

    before = len(read_alerts())
    run = run_local({"dataset_uri": str(home / "no-such-data.npz")})
    assert run.state == "FAILED"
    assert "train-generator" not in run.tasks and run.gate_passed is None
    alerts = read_alerts()[before:]
    assert [a["source"] for a in alerts] == ["kfp.pipeline"]
    assert alerts[0]["details"]["state"] == "FAILED"


@pytest.fixture()
def triton(home, tmp_path):
    """A real Triton on free loopback ports, its run dir under GENLINE_HOME (where publish looks
    for the admin token), serving a repository that holds the committed config."""
    import shutil

    from genline.serving import server as srv

    repo = tmp_path / "triton_repo"
    src = Path(__file__).resolve().parents[3] / "triton_repo" / contract.MODEL_NAME
    shutil.copytree(
        src, repo / contract.MODEL_NAME, ignore=shutil.ignore_patterns("[0-9]*", "quarantine")
    )
    ports: set[int] = set()
    while len(ports) < 3:
        ports.add(srv.free_port())
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
    try:
        yield cfg
    finally:
        srv.stop(cfg.resolved_run_dir())


@pytest.mark.slow
def test_generator_model_asset_trains_through_the_pipeline_and_publishes(home, tmp_path, triton):
    import numpy as np
    import tritonclient.grpc as grpcclient

    from dagster_project.defs.resources import DvcRemoteResource, GenlineStateResource
    from dagster_project.defs.training import GATE_CHECK, KubeflowPipelinesResource, generator_model
    from genline.serving.registry import Registry

    # a real DVC version of the built-in digits, as the training_dataset asset records it
    npz = save_npz(load_builtin(), tmp_path / "training_dataset.npz")
    version, _ = commit_dataset(DvcConfig.default(home), npz, {"source": "test"}, "test version")

    config = {
        "try_int8": False,
        "publish": True,
        "model_repository": str(triton.repository),
        "triton_url": triton.grpc_url,
    }
    (tmp_path / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
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
    (mat,) = result.asset_materializations_for_node("generator_model")
    md = {k: v.value for k, v in mat.metadata.items()}
    assert md["kfp_mode"] == "local" and md["kfp_state"] == "SUCCEEDED"
    assert md["kfp_run_id"].startswith("local-")
    assert md["dataset_version"] == version.md5
    assert md["gate_passed"] is True and md["gate_reasons"] == ""
    model_dir = Path(md["model_dir"])
    for name in (
        contract.CHECKPOINT,
        contract.METRICS,
        contract.GATE,
        contract.ONNX_FP32,
        contract.EXPORT_REPORT,
        contract.SAMPLES_PNG,
        contract.DATASET_INFO,
    ):
        assert (model_dir / name).is_file(), name
    metrics = json.loads((model_dir / contract.METRICS).read_text())
    assert md["fd_ratio"] == pytest.approx(metrics["fd_ratio"])
    assert json.loads((model_dir / contract.GATE).read_text())["passed"] is True
    assert Path(md["sample_grid"]).is_file() and "data:image/png;base64," in md["samples"]
    assert md["tensorrt"]["built"] is False  # CPU target: skipped with its reason
    # the pipeline trained on exactly the DVC version: the validate step restored it bit for bit
    run_dir = Path(md["kfp_outputs"])
    assert md5_file(run_dir / "validate-dataset" / "dataset") == version.md5
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == GATE_CHECK and check.passed

    # the gate passed, so publish_model ran: version 1 serves, with this run's lineage
    assert md["published_version"] == 1
    serving = Registry(home / "serving" / "registry.json").entry(
        triton.repository, contract.MODEL_NAME
    )
    assert serving["serving"] == 1
    lineage = serving["versions"]["1"]["lineage"]
    assert lineage["model_dir"] == str(model_dir)
    # the staleness monitor's baseline was computed at publish from the data the pipeline
    # trained on (the validate step's artifact, whose path has no .npz suffix)
    assert "staleness_baseline_error" not in lineage, lineage.get("staleness_baseline_error")
    baseline = json.loads(Path(lineage["staleness_baseline"]).read_text())
    assert baseline["dataset"]["fingerprint"] == metrics["dataset_fingerprint"]
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    label = grpcclient.InferInput(contract.INPUT_LABEL, [2, 1], "INT64")  # [B, 1] in Triton
    label.set_data_from_numpy(np.array([[3], [7]], dtype=np.int64))
    z = grpcclient.InferInput(contract.INPUT_Z, [2, 64], "FP32")
    z.set_data_from_numpy(np.random.default_rng(0).standard_normal((2, 64)).astype(np.float32))
    response = client.infer(contract.MODEL_NAME, [label, z])
    assert response.get_response().model_version == "1"
    assert response.as_numpy(contract.OUTPUT_IMAGE).shape == (2, 1, 8, 8)
    assert os.environ["GENLINE_HOME"] == str(home)


def test_cli_run_reports_a_failed_run_with_exit_status_1(home):
    from click.testing import CliRunner

    from genline.cli import cli

    result = CliRunner().invoke(
        cli, ["pipeline", "run", "--data", str(home / "missing.npz"), "--json"]
    )
    assert result.exit_code == 1, result.output
    summary = json.loads(result.output[result.output.rindex('{\n  "mode"') :])
    assert summary["mode"] == "local" and summary["state"] == "FAILED"
    assert Path(summary["run_dir"]).is_dir()
