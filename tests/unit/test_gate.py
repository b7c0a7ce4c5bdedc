"""The quality gate: floors, champion/challenger, and failing closed."""

from __future__ import annotations

import math

import pytest

from genline.evaluate import GateConfig, check_gate

GOOD = {"fd": 6.0, "fd_real": 5.0, "fd_ratio": 1.2, "conditional_accuracy": 0.98,
        "evaluator_accuracy": 0.98, "conditional_accuracy_ratio": 1.0, "diversity_ratio": 0.85}


def test_good_metrics_pass():
    g = check_gate(GOOD)
    assert g.passed and g.reasons == []
    assert all(c["passed"] for c in g.checks.values())


@pytest.mark.parametrize("key, value, text", [
    ("fd_ratio", 3.5, "fd_ratio = 3.5000 violates <= 3.0"),
    ("conditional_accuracy_ratio", 0.5, "conditional_accuracy_ratio = 0.5000 violates >= 0.92"),
    ("diversity_ratio", 0.4, "diversity_ratio = 0.4000 violates >= 0.7"),
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
    champion = {**GOOD, "fd_ratio": 1.0}
    within = check_gate({**GOOD, "fd_ratio": 1.04}, champion)
    assert within.passed
    worse = check_gate({**GOOD, "fd_ratio": 1.2}, champion)
    assert not worse.passed
    assert any("worse than the champion" in r for r in worse.reasons)
    looser = check_gate({**GOOD, "fd_ratio": 1.2}, champion, GateConfig(champion_margin=0.25))
    assert looser.passed


def test_champion_with_nan_fails_closed():
    g = check_gate(GOOD, {**GOOD, "diversity_ratio": math.nan})
    assert not g.passed and any("champion metric diversity_ratio" in r for r in g.reasons)
