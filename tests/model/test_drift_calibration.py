"""Drift monitors calibrated on the shared trained model (`ci_model_dir`), its generator run in
process: no false alarm over many unshifted windows and reference seeds, a style shift detected
at once, a broken artifact detected, a request-mix change kept apart from staleness.

Sizes (docs/drift.md): a window is 500 app requests (50 per label; `min_samples` is 30), a
reference profile 50 per label (500 rows), 10 reference seeds x 50 windows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genline import contract, drift
from genline.data import split
from genline.drift_calibration import OutputSampler, perturbed_generator, thicker_strokes

CFG = drift.DriftConfig()
WINDOW = 500
PER_CLASS = 50
REF_SEEDS = 10
WINDOWS = 50
KW = dict(model="genline_generator", version=1, window_start=0.0, window_end=3600.0)


@pytest.fixture(scope="module")
def sampler(ci_model_dir) -> OutputSampler:
    return OutputSampler(ci_model_dir)


@pytest.fixture(scope="module")
def references(sampler) -> list[pd.DataFrame]:
    return [sampler.profile(PER_CLASS, seed=1000 + s) for s in range(REF_SEEDS)]


@pytest.fixture(scope="module")
def windows(sampler) -> list[pd.DataFrame]:
    """50 unshifted windows: random 500-row subsets of 3,000 fresh app requests."""
    pool = sampler.window(3000, seed=7)
    rng = np.random.default_rng(8)
    return [pool.iloc[np.sort(rng.choice(len(pool), WINDOW, replace=False))]
            for _ in range(WINDOWS)]


@pytest.fixture(scope="module")
def real(sampler, digits) -> dict[str, pd.DataFrame]:
    """Real features: the training split (what was accepted at publish), held-out digits of the
    same style (new deliveries), and the held-out digits with thicker strokes (a new style)."""
    sp = split(digits)
    held = np.concatenate([sp.val.images, sp.test.images])
    held_labels = np.concatenate([sp.val.labels, sp.test.labels])
    return {"train": sampler.real(sp.train.images, sp.train.labels),
            "same_style": sampler.real(held, held_labels),
            "thicker": sampler.real(thicker_strokes(held), held_labels)}


def test_serving_health_no_false_alarm_over_windows_and_reference_seeds(references, windows):
    alarms = np.zeros((REF_SEEDS, WINDOWS), bool)
    for i, ref in enumerate(references):
        for j, cur in enumerate(windows):
            v = drift.serving_health(cur, ref, CFG, window_key=f"w{j}", **KW)
            assert v.status in ("drift", "no_drift"), v.reason
            alarms[i, j] = v.is_drift
    rate = alarms.mean()
    assert rate <= 0.02, f"false-alarm rate {rate:.1%} over {alarms.size} (reference, window)"
    assert alarms.mean(axis=1).max() <= 0.1  # no reference draw that alarms in most windows


def test_request_mix_no_false_alarm(windows):
    shares = {k: 0.1 for k in range(10)}
    alarms = [drift.request_mix(cur, shares, CFG, window_key=f"w{j}", **KW).is_drift
              for j, cur in enumerate(windows)]
    assert np.mean(alarms) <= 0.02


def test_staleness_no_false_alarm_and_thicker_strokes_detected_in_the_first_window(
        references, windows, real):
    stale_null, stale_shift = [], []
    for ref in references:
        base = drift.staleness_baseline(ref, real["train"], CFG)
        for j, cur in enumerate(windows[:10]):
            stale_null.append(drift.staleness(cur, real["same_style"], base, CFG,
                                              window_key=f"w{j}", **KW))
        # the new style arrives: the very next window is compared with it
        stale_shift.append(drift.staleness(windows[10], real["thicker"], base, CFG,
                                           window_key="after-shift", **KW))
    assert all(v.status in ("drift", "no_drift") for v in stale_null + stale_shift)
    assert np.mean([v.is_drift for v in stale_null]) <= 0.02
    assert all(v.is_drift for v in stale_shift), [v.reason for v in stale_shift]
    null_max = max(v.scores["mmd2_excess"] for v in stale_null)
    shift_min = min(v.scores["mmd2_excess"] for v in stale_shift)
    assert null_max < CFG.staleness_margin < shift_min
    # a style change is not a serving fault: the served outputs still match their reference
    assert not drift.serving_health(windows[10], references[0], CFG, window_key="s",
                                    **KW).is_drift


def test_input_batch_flags_a_new_style_and_passes_the_same_style(real):
    same = drift.input_batch(real["same_style"], real["train"], CFG, model=KW["model"],
                             window_key="batch-same")
    new = drift.input_batch(real["thicker"], real["train"], CFG, model=KW["model"],
                            window_key="batch-thicker")
    assert same.status == "no_drift", same.reason
    assert new.status == "drift" and any("ink_fraction" in k for k in new.drifted)


def test_serving_health_detects_a_broken_artifact(ci_model_dir, references, tmp_path):
    broken = perturbed_generator(ci_model_dir / contract.ONNX_FP32, tmp_path / "broken.onnx",
                                 scale=0.5)
    cur = OutputSampler(ci_model_dir, generator_onnx=broken).window(WINDOW, seed=11)
    for ref in references[:3]:
        v = drift.serving_health(cur, ref, CFG, window_key="broken", **KW)
        assert v.is_drift, v.reason
        assert len(v.drifted) >= 3


def test_scaled_z_fires_request_mix_not_staleness(sampler, references, windows, real):
    scaled = sampler.window(WINDOW, seed=12, z_scale=0.5)
    mix = drift.request_mix(scaled, {k: 0.1 for k in range(10)}, CFG, window_key="z", **KW)
    assert mix.is_drift and "z_norm" in mix.drifted
    base = drift.staleness_baseline(references[0], real["train"], CFG)
    st = drift.staleness(scaled, real["same_style"], base, CFG, window_key="z", **KW)
    assert st.status == "insufficient_data"  # never drift: no standard-latent rows to compare
    assert st.details["non_standard_latent_rows"] == WINDOW
    sh = drift.serving_health(scaled, references[0], CFG, window_key="z", **KW)
    assert not sh.is_drift  # not a serving fault either (no critical page for an app change)
    # half the apps scale z: request mix fires; staleness judges the standard half, unshifted
    mixed = pd.concat([scaled, windows[0]], ignore_index=True)
    assert drift.request_mix(mixed, {k: 0.1 for k in range(10)}, CFG, window_key="m",
                             **KW).is_drift
    st = drift.staleness(mixed, real["same_style"], base, CFG, window_key="m", **KW)
    assert st.status == "no_drift" and st.n == WINDOW
