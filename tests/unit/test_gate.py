"""The quality gate: floors, champion/challenger, and failing closed."""

from __future__ import annotations

import math

import pytest

from genline.gate import GateConfig, champion_losses, check_gate, floors_passed

GOOD = {"fd": 6.0, "fd_real": 5.0, "fd_ratio": 1.2, "conditional_accuracy": 0.98,
        "evaluator_accuracy": 0.98, "conditional_accuracy_ratio": 1.0, "diversity_ratio": 0.85,
        "nn_distance_ratio": 0.9, "num_classes": 10, "min_test_images_per_class": 30,
        "test_images_per_class": {str(k): 30 + k for k in range(10)}}


def test_good_metrics_pass():
    g = check_gate(GOOD)
    assert g.passed and g.reasons == []
    assert all(c["passed"] for c in g.checks.values())


@pytest.mark.parametrize("key, value, text", [
    ("fd_ratio", 3.5, "fd_ratio = 3.5000 violates <= 3.0"),
    ("conditional_accuracy_ratio", 0.5, "conditional_accuracy_ratio = 0.5000 violates >= 0.92"),
    ("diversity_ratio", 0.4, "diversity_ratio = 0.4000 violates >= 0.7"),
    ("nn_distance_ratio", 0.5, "nn_distance_ratio = 0.5000 violates >= 0.7"),
])
def test_each_floor_fails(key, value, text):
    g = check_gate({**GOOD, key: value})
    assert not g.passed and text in g.reasons


@pytest.mark.parametrize("bad", [math.nan, math.inf, None, "1.0", True])
def test_fails_closed_on_non_numbers(bad):
    g = check_gate({**GOOD, "fd_ratio": bad})
    assert not g.passed
    assert any("fd_ratio is missing or not a finite number" in r for r in g.reasons)


def test_fails_closed_on_missing_and_empty():
    assert not check_gate(None).passed
    assert not check_gate({}).passed
    missing = {k: v for k, v in GOOD.items() if k != "diversity_ratio"}
    g = check_gate(missing)
    assert not g.passed and any("diversity_ratio is missing" in r for r in g.reasons)


def test_configurable_floors():
    assert not check_gate({**GOOD, "fd_ratio": 2.0}, cfg=GateConfig(max_fd_ratio=1.5)).passed
    assert check_gate({**GOOD, "diversity_ratio": 0.6},
                      cfg=GateConfig(min_diversity_ratio=0.5)).passed


def test_champion_challenger():
    # winning: fd_ratio at least champion_min_gain (2%) better, the others within 5%
    champion = {**GOOD, "fd_ratio": 1.0, "diversity_ratio": 0.9}
    wins = check_gate({**GOOD, "fd_ratio": 0.97, "diversity_ratio": 0.87}, champion)
    assert wins.passed and not champion_losses(wins)
    tie = check_gate({**GOOD, "fd_ratio": 0.99, "diversity_ratio": 0.9}, champion)
    assert not tie.passed and floors_passed(tie)
    (lost,) = champion_losses(tie)
    assert lost["metric"] == "fd_ratio" and lost["champion"] == 1.0
    assert abs(lost["relative_change"] - -0.01) < 1e-9 and abs(lost["bound"] - 0.98) < 1e-9
    assert any("challenger lost on fd_ratio: 0.9900 vs the champion's 1.0000 (-1.0%)" in r
               for r in tie.reasons)
    less_diverse = check_gate({**GOOD, "fd_ratio": 0.9, "diversity_ratio": 0.8}, champion)
    assert [x["metric"] for x in champion_losses(less_diverse)] == ["diversity_ratio"]
    looser = check_gate({**GOOD, "fd_ratio": 1.0, "diversity_ratio": 0.9}, champion,
                        GateConfig(champion_min_gain=0.0))
    assert looser.passed


def test_champion_with_nan_fails_closed():
    g = check_gate(GOOD, {**GOOD, "diversity_ratio": math.nan})
    assert not g.passed and any("champion metric diversity_ratio" in r for r in g.reasons)


def test_untrustworthy_evaluator_fails_with_the_number_and_the_bound():
    g = check_gate({**GOOD, "evaluator_accuracy": 0.385, "conditional_accuracy_ratio": 2.0,
                    "num_classes": 2})
    assert not g.passed
    (reason,) = [r for r in g.reasons if "evaluator accuracy" in r]
    assert "0.385" in reason and "min_evaluator_accuracy = 0.8" in reason
    assert "chance for 2 classes is 0.500" in reason
    assert check_gate({**GOOD, "evaluator_accuracy": 0.7},
                      cfg=GateConfig(min_evaluator_accuracy=0.6)).passed


def test_too_few_test_images_per_class_fails_naming_the_class():
    counts = {**GOOD["test_images_per_class"], "7": 8}
    g = check_gate({**GOOD, "test_images_per_class": counts, "min_test_images_per_class": 8})
    assert not g.passed
    (reason,) = [r for r in g.reasons if "real test images" in r]
    assert "8 real test images" in reason and "min_test_images_per_class = 20" in reason
    assert "'7': 8" in reason and "at least 100 images per class" in reason
    assert check_gate({**GOOD, "min_test_images_per_class": 8},
                      cfg=GateConfig(min_test_images_per_class=5)).passed


@pytest.mark.parametrize("key", ["nn_distance_ratio", "min_test_images_per_class"])
def test_new_gated_values_fail_closed_when_missing(key):
    g = check_gate({k: v for k, v in GOOD.items() if k != key})
    assert not g.passed and any(f"{key} is missing" in r for r in g.reasons)


def test_copying_floor_is_configurable():
    assert check_gate({**GOOD, "nn_distance_ratio": 0.6},
                      cfg=GateConfig(min_nn_distance_ratio=0.5)).passed
