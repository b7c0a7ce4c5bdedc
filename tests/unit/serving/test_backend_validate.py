from __future__ import annotations

import numpy as np
import pytest

from genline.serving.request_checks import InputError, validate


def ok(n=2):
    return np.zeros((n, 1), np.int64), np.zeros((n, 64), np.float32)


def test_valid_request_is_reshaped():
    labels, z = validate(*ok(3), num_classes=10, latent_dim=64)
    assert labels.shape == (3,) and z.shape == (3, 64)


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda lab, z: (None, z), "missing"),
        (lambda lab, z: (lab.astype(np.int32), z), "INT64"),
        (lambda lab, z: (lab, z.astype(np.float64)), "FP32"),
        (lambda lab, z: (lab, z[:, :10]), r"\[B, 64\]"),
        (lambda lab, z: (lab[:0], z[:0]), "empty"),
        (lambda lab, z: (lab[:1], z), "samples"),
        (lambda lab, z: (lab + 10, z), "label 10 at sample 0 is outside the trained classes 0-9"),
        (lambda lab, z: (lab - 1, z), "outside"),
        (lambda lab, z: (lab, np.where(np.arange(64) == 3, np.nan, z).astype(np.float32)), "NaN"),
        (lambda lab, z: (lab, np.full_like(z, np.inf)), "Inf"),
    ],
)
def test_bad_requests(mutate, match):
    with pytest.raises(InputError, match=match):
        validate(*mutate(*ok()), num_classes=10, latent_dim=64)


def test_a_cheap_model_runs_on_one_thread():
    from genline.serving.backend_model import CHEAP_MODEL_MS, ort_threads

    assert ort_threads(CHEAP_MODEL_MS / 4, 2) == 1
    assert ort_threads(CHEAP_MODEL_MS * 10, 2) == 2 and ort_threads(CHEAP_MODEL_MS, 3) == 3


def test_single_image_ms_is_the_fastest_warm_run(monkeypatch):
    from genline.serving import backend_model

    clock = iter([0.0, 0.004, 1.0, 1.002, 2.0, 2.003])  # runs of 4, 2 and 3 ms
    fake_time = __import__("types").SimpleNamespace(perf_counter=lambda: next(clock))
    monkeypatch.setattr(backend_model, "time", fake_time)
    seen = []

    def run(labels, z):
        seen.append((labels.shape, z.shape))

    ms = backend_model.single_image_ms(run, 7, repeats=3)
    assert seen == [((1,), (1, 7))] * 3 and abs(ms - 2.0) < 1e-9


def test_a_cheap_model_asks_about_cancellation_only_past_a_declared_deadline():
    from genline.serving.backend_model import DEADLINE_PARAM, should_ask_cancelled

    now = 1_800_000_000.0
    assert should_ask_cancelled(False, {}, now)  # a costly model always asks
    assert not should_ask_cancelled(True, {}, now)  # no declared deadline: not asked
    assert not should_ask_cancelled(True, {DEADLINE_PARAM: now + 0.5}, now)
    assert should_ask_cancelled(True, {DEADLINE_PARAM: now - 0.001}, now)
    assert not should_ask_cancelled(True, {DEADLINE_PARAM: "soon"}, now)  # not a number
