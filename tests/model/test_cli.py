"""The `genline` CLI contract: files written, exit codes, user image folders."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from genline import contract
from tests.conftest import write_image_folder

pytestmark = pytest.mark.slow


def genline(*args, env=None):
    return subprocess.run([sys.executable, "-m", "genline.cli", *args], capture_output=True,
                          text=True, env=env)


def test_help_lists_commands():
    r = genline("--help")
    assert r.returncode == 0
    for cmd in ("train", "evaluate", "export", "sample"):
        assert cmd in r.stdout


def test_train_on_user_image_folder(tmp_path, digits):
    """A folder with one subfolder per class, 24x24 images, trains end to end at 24x24 (its
    evaluator once failed ONNX export at this size)."""
    root = write_image_folder(tmp_path / "user", digits, per_class=40, size=24)
    out = tmp_path / "model"
    r = genline("train", "--data", str(root), "--preset", "ci", "--max-seconds", "6",
                "--no-int8", "--out", str(out))
    assert r.returncode in (0, 1), r.stderr  # 1 = trained fine but the gate said no
    for name in (contract.CHECKPOINT, contract.METRICS, contract.GATE, contract.ONNX_FP32,
                 contract.SAMPLES_PNG, contract.LOSS_PNG):
        assert (out / name).stat().st_size > 0, name
    gate = json.loads((out / contract.GATE).read_text())
    assert (r.returncode == 0) == gate["passed"]
    info = json.loads((out / contract.DATASET_INFO).read_text())
    assert info["classes"][0] == "class_0" and info["num_rows"] == 400
    assert "fd_ratio" in r.stdout and "gate:" in r.stdout


def test_train_bad_data_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    r = genline("train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "m"))
    assert r.returncode == 2
    assert "the folder is empty" in r.stderr
    assert not (tmp_path / "m").exists()


def test_evaluate_export_sample(ci_model_dir, tmp_path):
    r = genline("evaluate", "--model", str(ci_model_dir))
    assert r.returncode == 0, r.stderr
    assert "gate: PASSED" in r.stdout
    r = genline("sample", "--model", str(ci_model_dir), "--label", "3", "-n", "16",
                "--out", str(tmp_path / "grid.png"))
    assert r.returncode == 0, r.stderr
    from PIL import Image

    with Image.open(tmp_path / "grid.png") as im:
        assert im.size[0] > im.size[1]  # 2 rows of 8
    r = genline("sample", "--model", str(ci_model_dir), "--label", "12", "--out",
                str(tmp_path / "x.png"))
    assert r.returncode == 2 and "label 12 outside 0-9" in r.stderr


def test_gate_failure_exits_nonzero_after_writing_files(tmp_path, digits):
    from genline.model import Generator, GeneratorConfig, save_generator

    save_generator(tmp_path / contract.CHECKPOINT, Generator(GeneratorConfig()),
                   dataset=digits.info())
    r = genline("evaluate", "--model", str(tmp_path))
    assert r.returncode == 1
    assert json.loads((tmp_path / contract.GATE).read_text())["passed"] is False
    assert "gate: FAILED" in r.stdout


def test_train_on_real_32x32_photos_writes_32x32_samples_and_its_gate(tmp_path):
    """Real photo tiles shipped in installed packages (not upsampled digits), native size."""
    from PIL import Image

    photos = tmp_path / "photos"
    r = genline("data", "photos", "--size", "32", "--out", str(photos))
    assert r.returncode == 0, r.stderr
    out = tmp_path / "model"
    # 40 s of training: this checks the shapes and the gate record, not the quality (the ci
    # preset's 180 s cap made it the slowest test)
    r = genline("train", "--data", str(photos), "--preset", "ci", "--max-seconds", "40",
                "--no-int8", "--no-distill", "--out", str(out))
    assert r.returncode in (0, 1), r.stderr
    assert "shape=(3, 32, 32)" in r.stdout
    export = json.loads((out / contract.EXPORT_REPORT).read_text())
    assert export["image_shape"] == [3, 32, 32]
    assert export["outputs"]["image"]["shape"] == [-1, 3, 32, 32]
    gate = json.loads((out / contract.GATE).read_text())
    assert (r.returncode == 0) == gate["passed"]
    with Image.open(out / contract.SAMPLES_PNG) as grid:  # 3 rows x 10 tiles of 32 px, 1 px gaps
        assert grid.mode == "RGB"
        assert grid.size == ((10 * 33 + 1) * 4, (3 * 33 + 1) * 4)
