"""A model directory is complete or absent, its files agree, and untrusted inputs are refused.

Issue 8, sections 2, 3 and 7: the gate judges whether its own evaluation counts; a training run
that dies leaves the previous directory (or nothing); every load path refuses a crafted pickle.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from genline import contract
from genline.fsutil import read_json, sha256_file
from genline.lineage import check_stamps

pytestmark = pytest.mark.slow


def genline(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genline.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=900)


def tree_digest(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): sha256_file(p) for p in sorted(d.rglob("*")) if p.is_file()}


def write_noise_folder(root: Path, per_class: int = 40, seed: int = 0) -> Path:
    """Two classes of random-noise images in mixed sizes and modes (the issue's reproduction)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    sizes, modes = [(8, 8), (12, 12), (20, 16), (31, 31)], ["L", "RGB", "RGBA"]
    for cls in ("noise_a", "noise_b"):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            w, h = sizes[i % len(sizes)]
            mode = modes[i % len(modes)]
            shape = (h, w) if mode == "L" else (h, w, len(mode))
            img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
            img.save(root / cls / f"{i:03d}.png")
    return root


# --- section 2: a gate that noise cannot pass ----------------------------------------------------


def test_noise_folder_fails_the_gate_with_the_evaluator_reason(tmp_path):
    root = write_noise_folder(tmp_path / "noise")
    out = tmp_path / "model"
    r = genline("train", "--data", str(root), "--preset", "ci", "--max-seconds", "4",
                "--no-int8", "--image-size", "8", "--channels", "1", "--out", str(out))
    assert r.returncode == 1, r.stdout + r.stderr
    gate = read_json(out / contract.GATE)
    assert gate["passed"] is False
    assert any("evaluator accuracy" in x and "min_evaluator_accuracy = 0.8" in x
               and "chance for 2 classes is 0.500" in x for x in gate["reasons"]), gate["reasons"]
    assert any("min_test_images_per_class = 20" in x for x in gate["reasons"]), gate["reasons"]
    assert "gate: FAILED" in r.stdout
    # mixed sizes are reported in one line: what was resized, from which sizes, to which
    (line,) = [x for x in r.stdout.splitlines() if "resized" in x]
    assert "80 images to 8x8" in line and "31x31 (20)" in line and "16x20 (20)" in line


def test_too_few_test_images_per_class_fails_with_the_size_reason(ci_model_dir, tmp_path, digits):
    """Real digits, but only 40 per class: ~8 test images per class cannot carry the metrics."""
    from genline.evaluate import evaluate_model_dir

    model = tmp_path / "model"
    shutil.copytree(ci_model_dir, model)
    idx = np.concatenate([np.flatnonzero(digits.labels == k)[:40] for k in range(10)])
    small = digits.subset(idx, "builtin:uci-digits[:40 per class]")
    metrics, gate = evaluate_model_dir(model, small)
    assert not gate.passed
    (reason,) = [x for x in gate.reasons if "real test images" in x]
    assert f"{metrics['min_test_images_per_class']} real test images" in reason
    assert metrics["min_test_images_per_class"] < 20
    assert "min_test_images_per_class = 20" in reason


def test_ci_model_gates_copying_and_trust(ci_model_dir):
    gate = read_json(ci_model_dir / contract.GATE)
    assert gate["passed"], gate["reasons"]
    for key in ("nn_distance_ratio", "evaluator_accuracy", "min_test_images_per_class"):
        assert gate["checks"][key]["passed"] is True, key
    assert gate["config"]["min_nn_distance_ratio"] == 0.7


# --- section 3: a model directory is complete or absent -----------------------------------------


def test_every_file_of_a_trained_directory_carries_one_run_stamp(ci_model_dir):
    assert check_stamps(ci_model_dir) == []
    stamps = {name: read_json(ci_model_dir / name) for name in contract.STAMPED_FILES}
    assert len({s[contract.RUN_ID_KEY] for s in stamps.values()}) == 1
    sha = sha256_file(ci_model_dir / contract.CHECKPOINT)
    assert all(s[contract.CHECKPOINT_SHA256_KEY] == sha for s in stamps.values())
    ckpt = torch.load(ci_model_dir / contract.CHECKPOINT, weights_only=True)
    assert ckpt[contract.RUN_ID_KEY] == stamps[contract.GATE][contract.RUN_ID_KEY]


def test_a_hand_mixed_directory_is_detected(ci_model_dir, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(ci_model_dir, mixed)
    gate = read_json(mixed / contract.GATE)
    gate[contract.RUN_ID_KEY] = "0" * 32
    (mixed / contract.GATE).write_text(json.dumps(gate))
    problems = check_stamps(mixed)
    assert any("different training runs" in p and "gate.json" in p for p in problems), problems


@pytest.mark.parametrize("point", ["train.after_checkpoint", "train.before_commit"])
def test_killed_training_leaves_the_previous_directory_untouched(ci_model_dir, tmp_path, point):
    out = tmp_path / "model"
    shutil.copytree(ci_model_dir, out)
    before = tree_digest(out)
    r = genline("train", "--preset", "ci", "--max-seconds", "3", "--no-int8", "--out", str(out),
                env={"GENLINE_KILL_AT": point})
    assert r.returncode == -signal.SIGKILL, r.stdout + r.stderr
    assert tree_digest(out) == before  # the old directory, byte for byte
    litter = [p.name for p in tmp_path.iterdir() if p.name.startswith(".model.")]
    assert litter and all(n.startswith(".model.staging-") for n in litter)


def test_killed_first_training_leaves_nothing_and_the_next_run_cleans_up(tmp_path):
    out = tmp_path / "model"
    r = genline("train", "--preset", "ci", "--max-seconds", "3", "--no-int8", "--out", str(out),
                env={"GENLINE_KILL_AT": "train.after_checkpoint"})
    assert r.returncode == -signal.SIGKILL
    assert not out.exists()
    r = genline("train", "--preset", "ci", "--max-seconds", "3", "--no-int8", "--out", str(out))
    assert r.returncode in (0, 1), r.stderr  # the gate may refuse a 3-second model; files exist
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging litter
    assert check_stamps(out) == []


def test_sample_refuses_a_checkpoint_from_another_run(ci_model_dir, tmp_path, digits):
    """The crash the issue observed: a new checkpoint beside an old model.onnx."""
    from genline.model import Generator, GeneratorConfig, save_generator

    mixed = tmp_path / "mixed"
    shutil.copytree(ci_model_dir, mixed)
    save_generator(mixed / contract.CHECKPOINT, Generator(GeneratorConfig()),
                   dataset=digits.info())
    r = genline("sample", "--model", str(mixed), "--out", str(tmp_path / "g.png"))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "mix of runs" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "g.png").exists()


@pytest.mark.parametrize("command", ["evaluate", "export", "sample"])
def test_commands_on_a_directory_that_is_not_a_model_directory(tmp_path, command):
    d = tmp_path / "not_a_model"
    d.mkdir()
    (d / "notes.txt").write_text("hello")
    extra = ["--out", str(tmp_path / "grid.png")] if command == "sample" else []
    r = genline(command, "--model", str(d), *extra)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "not a model directory: checkpoint.pt is missing" in r.stderr
    assert "notes.txt" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in d.iterdir()) == ["notes.txt"]  # nothing written
    assert not (tmp_path / "grid.png").exists()


# --- section 7: crafted pickles -----------------------------------------------------------------


class _CreatesFile:
    """Unpickling this object calls open(path, "w"): a stand-in for arbitrary code."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def craft_checkpoint(path: Path, marker: Path, like: Path) -> Path:
    """A checkpoint with real model_args/state_dict plus an object whose unpickling creates
    `marker`, saved with torch.save like any checkpoint."""
    good = torch.load(like, weights_only=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**good, "payload": _CreatesFile(marker)}, path)
    return path


def test_the_crafted_checkpoint_is_live(ci_model_dir, tmp_path):
    """Guard for the tests below: an unsafe load really does create the file."""
    marker = tmp_path / "pwned"
    evil = craft_checkpoint(tmp_path / "evil.pt", marker, ci_model_dir / contract.CHECKPOINT)
    torch.load(evil, weights_only=False)
    assert marker.exists()


def test_load_generator_and_load_evaluator_refuse_a_crafted_pickle(ci_model_dir, tmp_path):
    from genline.evaluator_net import load_evaluator
    from genline.model import CheckpointError, load_generator

    marker = tmp_path / "pwned"
    for loader, like in ((load_generator, contract.CHECKPOINT),
                         (load_evaluator, contract.EVALUATOR_CHECKPOINT)):
        evil = craft_checkpoint(tmp_path / f"evil-{like}", marker, ci_model_dir / like)
        with pytest.raises(CheckpointError, match="refused to load"):
            loader(evil)
    assert not marker.exists()


@pytest.mark.parametrize("path", ["--init-from", "--champion", "--model"])
def test_cli_load_paths_refuse_a_crafted_checkpoint(ci_model_dir, tmp_path, path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil"
    shutil.copytree(ci_model_dir, evil)
    craft_checkpoint(evil / contract.CHECKPOINT, marker, ci_model_dir / contract.CHECKPOINT)
    out = tmp_path / "out"
    if path == "--model":
        r = genline("evaluate", "--model", str(evil))
    else:
        r = genline("train", "--preset", "ci", "--max-seconds", "2", "--no-int8", path,
                    str(evil), "--out", str(out))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "refused to load" in r.stderr and "Traceback" not in r.stderr
    assert not marker.exists() and not out.exists()


def test_a_crafted_evaluator_in_the_cache_is_refused(ci_model_dir, tmp_path, digits):
    from genline.evaluate import EvalConfig, get_evaluator
    from genline.model import CheckpointError

    marker = tmp_path / "pwned"
    cache = tmp_path / "cache"
    cached = cache / f"{digits.fingerprint}-s{EvalConfig().evaluator_seed}"
    craft_checkpoint(cached / contract.EVALUATOR_CHECKPOINT, marker,
                     ci_model_dir / contract.EVALUATOR_CHECKPOINT)
    with pytest.raises(CheckpointError, match="refused to load"):
        get_evaluator(digits, cache_dir=cache)
    assert not marker.exists()


def test_checkpoint_sha256_is_in_the_lineage_of_every_file(ci_model_dir):
    sha = sha256_file(ci_model_dir / contract.CHECKPOINT)
    for name in contract.STAMPED_FILES:
        assert read_json(ci_model_dir / name)[contract.CHECKPOINT_SHA256_KEY] == sha, name


# --- found by a new-user review ------------------------------------------------------------------


def test_train_refuses_an_out_that_is_not_a_model_directory(tmp_path):
    precious = tmp_path / "precious"
    (precious / "sub").mkdir(parents=True)
    (precious / "notes.txt").write_text("keep me")
    (precious / "sub" / "data.csv").write_text("1,2")
    r = genline("train", "--preset", "ci", "--max-seconds", "1", "--no-int8", "--out",
                str(precious))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "not empty and not a model directory" in r.stderr and "notes.txt" in r.stderr
    assert (precious / "notes.txt").read_text() == "keep me"
    assert (precious / "sub" / "data.csv").exists()
    r = subprocess.run([sys.executable, "-m", "genline.cli", "train", "--out", "."],
                       capture_output=True, text=True, cwd=precious, timeout=300)
    assert r.returncode == 2 and "current directory" in r.stderr and "Traceback" not in r.stderr


def test_sigterm_during_training_cleans_up_and_keeps_the_old_directory(ci_model_dir, tmp_path):
    import time

    out = tmp_path / "model"
    shutil.copytree(ci_model_dir, out)
    before = tree_digest(out)
    proc = subprocess.Popen(
        [sys.executable, "-m", "genline.cli", "train", "--preset", "ci", "--max-seconds", "3",
         "--no-int8", "--champion", str(ci_model_dir), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not list(tmp_path.glob(".model.staging-*/checkpoint.pt")):  # training has finished
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # during evaluation against the champion
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert tree_digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging litter


def test_evaluate_on_data_with_other_classes_is_a_usage_error(ci_model_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(ci_model_dir, model)
    before = tree_digest(model)
    root = write_noise_folder(tmp_path / "noise", per_class=6)
    r = genline("evaluate", "--model", str(model), "--data", str(root))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "trained on classes" in r.stderr and "noise_a" in r.stderr
    assert tree_digest(model) == before  # nothing written


def test_sample_refuses_a_directory_with_another_runs_metrics(ci_model_dir, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(ci_model_dir, mixed)
    metrics = read_json(mixed / contract.METRICS)
    metrics[contract.RUN_ID_KEY] = "f" * 32
    (mixed / contract.METRICS).write_text(json.dumps(metrics))
    r = genline("sample", "--model", str(mixed), "--out", str(tmp_path / "g.png"))
    assert r.returncode == 2 and "different training runs" in r.stderr
    assert not (tmp_path / "g.png").exists()


def test_refusal_message_never_suggests_an_unsafe_load(ci_model_dir, tmp_path):
    from genline.model import CheckpointError, load_generator

    evil = craft_checkpoint(tmp_path / "evil.pt", tmp_path / "pwned",
                            ci_model_dir / contract.CHECKPOINT)
    with pytest.raises(CheckpointError) as err:
        load_generator(evil)
    assert "weights_only" not in str(err.value) and "never loads" in str(err.value)
