"""publish refuses mixed, unstamped, class-inconsistent and untrusted model directories.

Each refusal happens before a version number is assigned or the server is contacted, so these
tests point the target at a port nothing listens on: reaching the server would fail differently.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnx_fixture
import pytest
from onnx import numpy_helper
from onnx.external_data_helper import set_external_data

from genline import contract
from genline.fsutil import atomic_write_json, read_json, sha256_file
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
