"""publish refuses mixed, unstamped, class-inconsistent and untrusted model directories.

Each refusal happens before a version number is assigned or the server is contacted, so these
tests point the target at a port nothing listens on: reaching the server would fail differently.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnx
import onnx_fixture
import pytest
from onnx import numpy_helper
from onnx.external_data_helper import set_external_data

from genline import contract
from genline.fsutil import atomic_write_json, read_json, sha256_file
from genline.gate import GateConfig, check_gate
from genline.netutil import free_port
from genline.serving import repository as repo_mod
from genline.serving.config import write_configs
from genline.serving.publish import PublishError, Target, publish
from genline.serving.publish_checks import ModelDirError, class_change, read_model_dir


@pytest.fixture
def target(tmp_path) -> Target:
    repo = tmp_path / "repo"
    write_configs(repo)
    return Target(
        repository=repo,
        url=f"127.0.0.1:{free_port()}",  # nothing listens: a refusal must come first
        run_dir=tmp_path / "run",
        registry_path=tmp_path / "serving" / "registry.json",
        profile_dir=tmp_path / "profiles",
        alert_dir=tmp_path / "alerts",
    )


def assert_nothing_published(target: Target) -> None:
    repo = Path(target.repository)
    assert repo_mod.versions(repo, target.model) == []
    assert repo_mod.quarantined(repo, target.model) == []
    assert repo_mod.staging_leftovers(repo) == []
    assert not Path(target.registry_path).exists()  # no version number was ever assigned


def refused(model_dir: Path, target: Target) -> str:
    with pytest.raises(PublishError) as err:
        publish(model_dir, target)
    assert err.value.version is None
    assert_nothing_published(target)
    return str(err.value)


def test_a_stamped_directory_passes_the_checks(tmp_path):
    md = read_model_dir(onnx_fixture.make_model_dir(tmp_path / "m"))
    stamp = read_json(tmp_path / "m" / contract.GATE)
    assert md.run_id == stamp[contract.RUN_ID_KEY]
    assert md.checkpoint_sha256 == sha256_file(tmp_path / "m" / contract.CHECKPOINT)


def test_gate_from_another_run_is_refused(tmp_path, target):
    mixed = onnx_fixture.make_model_dir(tmp_path / "a", seed=0)
    other = onnx_fixture.make_model_dir(tmp_path / "b", seed=1)
    shutil.copy(other / contract.GATE, mixed / contract.GATE)
    ours = read_json(mixed / contract.METRICS)[contract.RUN_ID_KEY]
    theirs = read_json(other / contract.GATE)[contract.RUN_ID_KEY]
    msg = refused(mixed, target)
    assert "files come from different training runs" in msg
    assert f"gate.json: {theirs[:12]}" in msg and f"metrics.json: {ours[:12]}" in msg
    assert f"export.json: {ours[:12]}" in msg and f"dataset.json: {ours[:12]}" in msg


def test_an_edited_checkpoint_stamp_is_refused(tmp_path, target):
    d = onnx_fixture.make_model_dir(tmp_path / "m")
    export = read_json(d / contract.EXPORT_REPORT)
    export[contract.CHECKPOINT_SHA256_KEY] = "0" * 64
    atomic_write_json(d / contract.EXPORT_REPORT, export)
    msg = refused(d, target)
    assert "export.json was made from checkpoint sha256 000000000000..." in msg
    assert f"{contract.CHECKPOINT} is {sha256_file(d / contract.CHECKPOINT)[:12]}" in msg


def test_missing_stamps_are_refused(tmp_path, target):
    d = onnx_fixture.make_model_dir(tmp_path / "m", stamp=False)
    assert "checkpoint.pt is missing" in refused(d, target)
    (d / contract.CHECKPOINT).write_bytes(b"weights from before stamping")
    msg = refused(d, target)
    for name in contract.STAMPED_FILES:
        assert f"{name} carries no run stamp (run_id, checkpoint_sha256)" in msg
    onnx_fixture.stamp_model_dir(d)
    (d / contract.DATASET_INFO).unlink()
    assert "dataset.json is missing" in refused(d, target)


def test_a_replaced_checkpoint_is_refused(tmp_path, target):
    d = onnx_fixture.make_model_dir(tmp_path / "m")
    stamped = sha256_file(d / contract.CHECKPOINT)
    (d / contract.CHECKPOINT).write_bytes(b"weights of some other run")
    msg = refused(d, target)
    actual = sha256_file(d / contract.CHECKPOINT)
    for name in contract.STAMPED_FILES:
        assert f"{name} was made from checkpoint sha256 {stamped[:12]}..., but" in msg
    assert f"{contract.CHECKPOINT} is {actual[:12]}..." in msg


def test_class_lists_must_agree_with_each_other_and_the_count(tmp_path, target):
    d = onnx_fixture.make_model_dir(tmp_path / "m")
    names = [str(i) for i in range(10)]
    for name, classes in ((contract.EXPORT_REPORT, names), (contract.DATASET_INFO, names[::-1])):
        atomic_write_json(d / name, {**read_json(d / name), "classes": classes})
    assert "export.json records classes" in refused(d, target)
    atomic_write_json(
        d / contract.DATASET_INFO, {**read_json(d / contract.DATASET_INFO), "classes": names[:3]}
    )
    atomic_write_json(
        d / contract.EXPORT_REPORT, {**read_json(d / contract.EXPORT_REPORT), "classes": names[:3]}
    )
    assert "3 class names ['0', '1', '2'] but export.json num_classes is 10" in refused(d, target)


def test_class_change_compares_names_else_counts():
    ten = {"num_classes": 10, "classes": [str(i) for i in range(10)]}
    assert class_change(ten, dict(ten), 3) is None
    two = {"num_classes": 2, "classes": ["a", "b"]}
    assert class_change(two, ten, 3) == (
        "classes ['a', 'b'] differ from serving version 3's ['0', '1', '2', ..., '9'] (10 classes)"
    )
    renamed = {"num_classes": 10, "classes": list("abcdefghij")}
    assert class_change(renamed, ten, 1) is not None  # same count, other names
    assert class_change({"num_classes": 10, "classes": None}, ten, 1) is None
    assert "2 unnamed classes" in class_change({"num_classes": 2}, ten, 1)


def with_external_tensor(model_dir: Path, file_name: str, location: str) -> Path:
    """Point initializer 'w' of `file_name` at `location` (external data) and re-record sha."""
    path = model_dir / file_name
    model = onnx.load(str(path))
    tensor = next(t for t in model.graph.initializer if t.name in ("w", "w1"))
    set_external_data(tensor, location=location, offset=0, length=4096)
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    path.write_bytes(model.SerializeToString())  # onnx.save would try to write the data file
    export = read_json(model_dir / contract.EXPORT_REPORT)
    export["files"][file_name] = sha256_file(path)
    atomic_write_json(model_dir / contract.EXPORT_REPORT, export)
    return model_dir


@pytest.mark.parametrize(
    "location", ["../../etc/passwd", "/etc/passwd", "sub/../../x.bin", "..\\..\\secret.bin"]
)
def test_external_data_outside_the_directory_is_refused(location, tmp_path, target):
    d = with_external_tensor(onnx_fixture.make_model_dir(tmp_path / "m"), "model.onnx", location)
    msg = refused(d, target)
    assert (
        f"model.onnx: graph initializer 'w' reads its data from external location "
        f"{location!r}, outside the model directory" in msg
    )
    assert "untrusted ONNX" in msg


def test_external_data_inside_the_directory_is_refused_too(tmp_path, target):
    d = onnx_fixture.make_model_dir(tmp_path / "m")
    rng = np.random.default_rng(0)
    (d / "weights.bin").write_bytes(
        numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32)).raw_data
    )
    with_external_tensor(d, contract.EVALUATOR_ONNX, "weights.bin")
    msg = refused(d, target)
    assert "evaluator.onnx: graph initializer 'w1'" in msg and "'weights.bin'" in msg
    assert "neither stages nor verifies" in msg


def test_external_data_in_a_constant_node_is_found(tmp_path):
    d = onnx_fixture.make_model_dir(tmp_path / "m")
    model = onnx.load(str(d / "model.onnx"))
    const = onnx.helper.make_node(
        "Constant",
        [],
        ["c"],
        name="c0",
        value=numpy_helper.from_array(np.zeros(4, np.float32), "cv"),
    )
    set_external_data(const.attribute[0].t, location="/etc/shadow")
    const.attribute[0].t.data_location = onnx.TensorProto.EXTERNAL
    const.attribute[0].t.ClearField("raw_data")
    model.graph.node.insert(0, const)
    (d / "model.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(ModelDirError, match="node 'c0' attribute 'value'.*'/etc/shadow'"):
        read_model_dir(d)


# --- the gate is re-checked, not trusted ----------------------------------------------------------


def regated(ci_model_dir: Path, dest: Path, cfg: GateConfig = GateConfig(), **metrics) -> Path:
    """A copy of the ci model whose metrics.json has `metrics` changed and whose gate.json is
    what genline.gate says about them (stamps kept): the output of a run that scored so."""
    d = Path(shutil.copytree(ci_model_dir, dest))
    m = {**read_json(d / contract.METRICS), **metrics}
    atomic_write_json(d / contract.METRICS, m)
    gate = read_json(d / contract.GATE)
    verdict = check_gate(m, None, cfg).to_json()
    atomic_write_json(d / contract.GATE, {**gate, **verdict, "config": asdict(cfg)})
    return d


def edit_gate(d: Path, **changes) -> None:
    atomic_write_json(d / contract.GATE, {**read_json(d / contract.GATE), **changes})


def test_the_ci_model_passes_the_gate_recheck(ci_model_dir):
    assert read_model_dir(ci_model_dir).gate["passed"] is True


def test_a_failed_gate_with_its_flag_flipped_is_refused(ci_model_dir, tmp_path, target):
    d = regated(ci_model_dir, tmp_path / "m", fd_ratio=5.0)
    gate = read_json(d / contract.GATE)
    assert gate["passed"] is False and gate["checks"]["fd_ratio"]["passed"] is False
    edit_gate(d, passed=True)
    msg = refused(d, target)
    assert "gate.json says passed but lists reasons it failed: fd_ratio = 5.0000" in msg
    edit_gate(d, reasons=[])
    msg = refused(d, target)
    assert "gate.json says passed but these checks failed: fd_ratio (value 5.0, <= 3.0)" in msg
    checks = read_json(d / contract.GATE)["checks"]
    edit_gate(d, checks={k: {**c, "passed": True} for k, c in checks.items()})
    msg = refused(d, target)
    assert (
        "metrics.json does not pass the gate" in msg and "fd_ratio = 5.0000 violates <= 3.0" in msg
    )
    edit_gate(d, checks={})
    assert "gate.json says passed but records no checks" in refused(d, target)


def test_a_metrics_json_that_contradicts_gate_json_is_refused(ci_model_dir, tmp_path, target):
    worse = Path(shutil.copytree(ci_model_dir, tmp_path / "worse"))
    atomic_write_json(
        worse / contract.METRICS, {**read_json(worse / contract.METRICS), "diversity_ratio": 0.1}
    )
    msg = refused(worse, target)
    assert "metrics.json does not pass the gate gate.json records as passed" in msg.replace(
        str(worse) + "/", ""
    )
    assert "diversity_ratio = 0.1000 violates >= 0.7" in msg
    better = Path(shutil.copytree(ci_model_dir, tmp_path / "better"))
    recorded = read_json(better / contract.GATE)["checks"]["fd_ratio"]["value"]
    atomic_write_json(
        better / contract.METRICS, {**read_json(better / contract.METRICS), "fd_ratio": 0.5}
    )
    msg = refused(better, target)
    assert f"gate.json records fd_ratio value {recorded!r} but" in msg
    assert "metrics.json gives 0.5" in msg


def test_a_gate_looser_than_the_defaults_needs_allow_custom_gate(ci_model_dir, tmp_path, target):
    loose = GateConfig(max_fd_ratio=10.0, min_diversity_ratio=0.1)
    d = regated(ci_model_dir, tmp_path / "m", loose, fd_ratio=5.0)
    assert read_json(d / contract.GATE)["passed"] is True  # honestly passed, under its own bounds
    msg = refused(d, target)
    assert "gated with bounds looser than the defaults" in msg
    assert "max_fd_ratio = 10.0 (default 3.0), min_diversity_ratio = 0.1 (default 0.7)" in msg
    assert "--allow-custom-gate" in msg
    assert read_model_dir(d, allow_custom_gate=True).gate["config"]["max_fd_ratio"] == 10.0
    # the recorded config is the one re-applied: its bounds must match what gate.json records
    edit_gate(d, config={**read_json(d / contract.GATE)["config"], "max_fd_ratio": 6.0})
    with pytest.raises(ModelDirError, match=r"records fd_ratio bound 10.0 but .* config gives 6.0"):
        read_model_dir(d, allow_custom_gate=True)


def test_a_stricter_gate_needs_no_flag_and_unknown_config_keys_are_ignored(ci_model_dir, tmp_path):
    d = regated(ci_model_dir, tmp_path / "m", GateConfig(max_fd_ratio=2.0))
    edit_gate(d, config={**read_json(d / contract.GATE)["config"], "from_the_future": 1})
    assert read_model_dir(d).gate["config"]["max_fd_ratio"] == 2.0


# --- a refusal is a warning, one incident per directory and reason --------------------------------


def open_incidents(target: Target) -> list[dict]:
    from click.testing import CliRunner

    from genline.cli import cli

    res = CliRunner().invoke(
        cli, ["alerts", "list", "--open", "--json", "--dir", str(target.alert_dir)]
    )
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_repeated_refusals_update_one_warning_incident(ci_model_dir, tmp_path, target):
    d = regated(ci_model_dir, tmp_path / "m", fd_ratio=5.0)
    edit_gate(d, passed=True)
    first, second = refused(d, target), refused(d, target)
    assert first == second
    [incident] = open_incidents(target)
    assert incident["alert"]["severity"] == "warning" and incident["count"] == 2
    assert incident["alert"]["kind"] == "publish.refused"
    assert incident["key"].endswith(f"{d.resolve()}:gate")
    # another reason for the same directory is another incident; the first is unchanged
    (d / contract.EXPORT_REPORT).unlink()
    for name in (contract.GATE, contract.METRICS):  # the gate is fine again
        shutil.copy(ci_model_dir / name, d / name)
    assert "export.json is missing" in refused(d, target)
    incidents = {i["key"].rsplit(":", 1)[-1]: i for i in open_incidents(target)}
    assert set(incidents) == {"gate", "export"}
    assert incidents["gate"]["count"] == 2 and incidents["export"]["count"] == 1
    assert all(i["alert"]["severity"] == "warning" for i in incidents.values())


def test_the_teachers_int8_graph_serves_only_when_export_adopted_it(tmp_path):
    md_path = onnx_fixture.make_model_dir(tmp_path / "m")
    export = read_json(md_path / contract.EXPORT_REPORT)
    shutil.copy(md_path / contract.ONNX_FP32, md_path / contract.ONNX_INT8)
    adopted = {"adopted": True, "reasons": [], "metrics_int8": {"fd_ratio": 1.01}}
    atomic_write_json(md_path / contract.EXPORT_REPORT, {
        **export, "serving_variant": contract.ONNX_INT8, "int8": adopted,
        "files": {**export["files"],
                  contract.ONNX_INT8: sha256_file(md_path / contract.ONNX_INT8)}})
    md = read_model_dir(md_path)
    assert md.serving_variant == contract.ONNX_INT8 and md.metrics["int8"] == {"fd_ratio": 1.01}
    atomic_write_json(md_path / contract.EXPORT_REPORT, {
        **read_json(md_path / contract.EXPORT_REPORT), "int8": {**adopted, "adopted": False}})
    with pytest.raises(ModelDirError, match="teacher's INT8 graph without having adopted it"):
        read_model_dir(md_path)
