"""Behaviour of a trained generator: the `ci` preset learns, passes the gate, and the gate
catches broken generators. Slow: trains once per session (~40 s on 2 cores)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genline import contract
from genline.evaluate import evaluate_model_dir
from genline.model import Generator, GeneratorConfig, load_generator, save_generator

pytestmark = pytest.mark.slow


def test_ci_preset_loss_falls_and_gate_passes(ci_model_dir):
    out = ci_model_dir
    ckpt = torch.load(out / contract.CHECKPOINT, weights_only=True)
    hist = ckpt["train"]["history"]
    assert hist["iteration"][0] == 0 and len(hist["val_loss"]) >= 3
    assert hist["val_loss"][-1] < 0.6 * hist["val_loss"][0]  # untrained -> trained
    assert hist["train_loss"][-1] < hist["train_loss"][1]
    metrics = json.loads((out / contract.METRICS).read_text())
    for key in ("fd", "fd_real", "fd_ratio", "conditional_accuracy", "evaluator_accuracy",
                "diversity_ratio"):
        assert isinstance(metrics[key], float)
    assert metrics["evaluator_accuracy"] > 0.9
    gate = json.loads((out / contract.GATE).read_text())
    assert gate["passed"] is True and gate["reasons"] == []
    assert ckpt["dataset"]["fingerprint"] == metrics["dataset_fingerprint"]
    for name in (contract.ONNX_FP32, contract.EVALUATOR_ONNX, contract.SAMPLES_PNG,
                 contract.LOSS_PNG, contract.EXPORT_REPORT):
        assert (out / name).stat().st_size > 0


def test_samples_are_conditional(ci_model_dir):
    """Each row of the grid is the requested digit: the evaluator agrees on >= 90%."""
    from genline.evaluate import evaluator_outputs
    from genline.evaluator_net import load_evaluator

    model, _ = load_generator(ci_model_dir / contract.CHECKPOINT)
    evaluator, _ = load_evaluator(ci_model_dir / contract.EVALUATOR_CHECKPOINT)
    labels = torch.arange(10).repeat(20)
    with torch.no_grad():
        images = model(labels, torch.randn(200, model.cfg.latent_dim)).numpy()
    probs, _ = evaluator_outputs(evaluator, images)
    assert (probs.argmax(1) == labels.numpy()).mean() >= 0.9


def _broken_dir(tmp_path, digits, poison=None):
    g = Generator(GeneratorConfig())  # untrained: the output layer is zero, images = noise
    if poison is not None:
        poison(g)
    save_generator(tmp_path / contract.CHECKPOINT, g, dataset=digits.info())
    return tmp_path


def test_untrained_generator_fails_the_gate(tmp_path, digits):
    metrics, gate = evaluate_model_dir(_broken_dir(tmp_path, digits), digits)
    assert not gate.passed
    assert any("fd_ratio" in r for r in gate.reasons)
    assert any("conditional_accuracy_ratio" in r for r in gate.reasons)
    on_disk = json.loads((tmp_path / contract.GATE).read_text())
    assert on_disk["passed"] is False and on_disk["reasons"] == gate.reasons


def test_nan_generator_fails_closed(tmp_path, digits):
    def poison(g):
        with torch.no_grad():
            g.net.out.bias.fill_(float("nan"))

    metrics, gate = evaluate_model_dir(_broken_dir(tmp_path, digits, poison), digits)
    assert not gate.passed
    assert any("fails closed" in r or "could not be scored" in r for r in gate.reasons)
    json.loads((tmp_path / contract.METRICS).read_text())  # still valid JSON (NaN -> null)


def test_missing_checkpoint_fails_closed(tmp_path, digits):
    metrics, gate = evaluate_model_dir(tmp_path, digits)
    assert not gate.passed and "could not be scored" in gate.reasons[0]


def test_a_copy_of_the_champion_ties_and_does_not_win(ci_model_dir, digits, tmp_path):
    import shutil

    challenger = tmp_path / "challenger"
    shutil.copytree(ci_model_dir, challenger)
    _, gate = evaluate_model_dir(challenger, digits, champion_dir=ci_model_dir)
    # re-scored like for like (same data, evaluator and seeds): the very same numbers
    check = gate.checks["champion:fd_ratio"]
    assert check["value"] == check["champion"]
    assert gate.checks["champion:diversity_ratio"]["passed"]
    # a tie is not a win: only a challenger that beats the champion publishes
    assert not gate.passed and any("challenger lost on fd_ratio" in r for r in gate.reasons)


def test_broken_challenger_loses_to_champion(ci_model_dir, digits, tmp_path):
    _, gate = evaluate_model_dir(_broken_dir(tmp_path, digits), digits,
                                 champion_dir=ci_model_dir)
    assert not gate.passed and any("challenger lost on" in r for r in gate.reasons)


def test_training_is_deterministic_under_a_seed(digits, tmp_path):
    from genline.train import preset, train

    cfg = preset("ci", iterations=30, eval_every=10, hidden=32)
    a = train(digits, cfg, tmp_path / "a", progress=False)
    b = train(digits, cfg, tmp_path / "b", progress=False)
    assert a.history["val_loss"] == b.history["val_loss"]
    ga, _ = load_generator(a.checkpoint)
    gb, _ = load_generator(b.checkpoint)
    for pa, pb in zip(ga.parameters(), gb.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_warm_start_refuses_other_shapes(ci_model_dir, tmp_path):
    from genline.data import DataConfig, load_builtin
    from genline.train import preset, train

    ds16 = load_builtin(DataConfig(image_size=16))
    with pytest.raises(ValueError, match="image shape"):
        train(ds16, preset("ci", iterations=5), tmp_path, init_from=ci_model_dir,
              progress=False)


def test_warm_start_continues_from_the_checkpoint(ci_model_dir, digits, tmp_path):
    from genline.train import preset, train

    r = train(digits, preset("ci", iterations=20, eval_every=20), tmp_path,
              init_from=ci_model_dir, progress=False)
    base = torch.load(ci_model_dir / contract.CHECKPOINT, weights_only=True)
    # starting from a trained model, the first check is already near the trained loss
    assert r.history["val_loss"][0] < 1.2 * base["train"]["history"]["val_loss"][-1]
    assert np.isfinite(r.history["val_loss"][0])
