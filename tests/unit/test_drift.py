"""genline.drift on synthetic frames: schema faults, insufficient data, config, the statistics
each monitor decides by, reports and their retention. Calibration on a real model is in
tests/model/test_drift_calibration.py."""

from __future__ import annotations

import os
import re

import numpy as np
import pandas as pd
import pytest

from genline import drift
from genline.drift import DRIFT_FEATURES, DriftConfig, DriftConfigError
from genline.drift_verdicts import read_verdicts, record_verdict

W = dict(model="genline_generator", version=3, window_key="2026-12-02-10:00",
         window_start=1_764_669_600.0, window_end=1_764_673_200.0)
D = 64


def frame(n: int, seed: int, shift: float = 0.0, zscale: float = 1.0,
          labels: np.ndarray | None = None) -> pd.DataFrame:
    """Rows shaped like the prediction log's drift columns; features depend on the label."""
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, 10, n) if labels is None else labels
    z = rng.standard_normal((n, D)) * zscale
    d = {"label": lab, "z_mean": z.mean(1).round(5), "z_std": z.std(1).round(5),
         "z_norm": np.linalg.norm(z, axis=1).round(4)}
    for i, f in enumerate(DRIFT_FEATURES):
        d[f] = rng.standard_normal(n) * (1 + 0.1 * i) + lab * 0.5 + shift
    return pd.DataFrame(d)


CFG = DriftConfig()
SHARES = {k: 0.1 for k in range(10)}


@pytest.mark.parametrize("fault,match", [
    (lambda df: df.drop(columns=["emb_2"]), r"missing column\(s\) \['emb_2'\]"),
    (lambda df: df.rename(columns={"ink_fraction": "ink"}), r"not expected: \['ink'"),
    (lambda df: df.assign(pred_confidence=np.nan), r"\['pred_confidence'\] are entirely null"),
])
def test_schema_faults_are_error_verdicts_never_no_drift(fault, match):
    ref, cur = frame(2000, 1), fault(frame(1000, 2))
    for v in (drift.serving_health(cur, ref, CFG, **W),
              drift.input_batch(cur, ref, CFG, model=W["model"], window_key="batch-7")):
        assert v.status == "error", v
        assert v.drifted == [] and v.scores == {}
        assert "schema fault in the " in v.reason
        assert re.search(match, v.reason), v.reason
    # a fault in the reference side is named as such
    v = drift.serving_health(frame(1000, 2), fault(ref), CFG, **W)
    assert v.status == "error" and "reference profile" in v.reason
    base = drift.staleness_baseline(ref, frame(500, 3), CFG)
    v = drift.staleness(frame(1000, 2), fault(frame(500, 4)), base, CFG, **W)
    assert v.status == "error" and "the real features" in v.reason
    with pytest.raises(ValueError, match="schema fault in the real features"):
        drift.staleness_baseline(ref, fault(frame(500, 3)), CFG)


def test_request_mix_schema_fault():
    v = drift.request_mix(frame(1000, 1).drop(columns=["z_norm"]), SHARES, CFG, **W)
    assert v.status == "error" and "z_norm" in v.reason


def test_insufficient_data_is_neither_drift_nor_no_drift():
    ref = frame(2000, 1)
    # 25 rows per label, below min_samples=30, and shifted: still not "drift"
    small = frame(250, 2, shift=3.0, labels=np.repeat(np.arange(10), 25))
    assert drift.serving_health(small, ref, CFG, **W).status == "insufficient_data"
    assert drift.request_mix(small, SHARES, CFG, **W).status == "insufficient_data"
    base = drift.staleness_baseline(ref, frame(500, 3), CFG)
    assert drift.staleness(small, frame(500, 3), base, CFG, **W).status == "insufficient_data"
    assert drift.staleness(frame(2000, 2), frame(200, 3), base, CFG,
                           **W).status == "insufficient_data"  # the real side is too small
    # one label with enough rows is tested; the others are listed as skipped
    lab = np.r_[np.full(40, 3), np.arange(10).repeat(2)]
    v = drift.serving_health(frame(len(lab), 5, labels=lab), ref, CFG, **W)
    assert v.status == "no_drift" and v.details["tested_labels"] == [3]
    assert set(v.details["skipped_labels"]) == {str(k) for k in range(10) if k != 3}
    assert v.n == 42  # label 3: 40 + 2


def test_serving_health_per_label_so_a_label_mix_change_is_not_output_drift():
    ref = frame(4000, 1)
    mostly_nines = frame(3000, 2, labels=np.r_[np.full(2500, 9), np.arange(10).repeat(50)])
    v = drift.serving_health(mostly_nines, ref, CFG, **W)
    assert v.status == "no_drift", v.reason
    # pooled over labels the same window reads as a large shift
    pooled = drift.wasserstein_norm(ref["mean_intensity"].to_numpy(),
                                    mostly_nines["mean_intensity"].to_numpy())
    assert pooled > 0.5
    # while the request mix sees it
    assert drift.request_mix(mostly_nines, SHARES, CFG, baseline_n=5000, **W).status == "drift"


def test_serving_health_detects_a_shift_in_one_label_and_names_it():
    ref, cur = frame(4000, 1), frame(3000, 2)
    cur.loc[cur["label"] == 4, "emb_1"] += 0.8
    v = drift.serving_health(cur, ref, CFG, **W)
    assert v.status == "drift"
    assert v.drifted == ["label=4/emb_1"], v.drifted
    assert v.scores["label=4/emb_1"] >= CFG.serving_min_effect
    assert v.details["p_values"]["label=4/emb_1"] < v.thresholds["ks_p_value"]
    assert v.thresholds["ks_p_value"] == pytest.approx(CFG.serving_alpha / 70)


def test_wasserstein_score_is_evidentlys_definition():
    from evidently.legacy.calculations.stattests.wasserstein_distance_norm import (
        _wasserstein_distance_norm,
    )
    from evidently.legacy.core import ColumnType

    a, b = frame(500, 1)["emb_0"], frame(400, 2, shift=0.2)["emb_0"]
    ours = drift.wasserstein_norm(a.to_numpy(), b.to_numpy())
    theirs, _ = _wasserstein_distance_norm(a, b, ColumnType.Numerical, 0.1)
    assert ours == pytest.approx(theirs, rel=1e-12)


def test_a_tiny_difference_in_a_huge_window_is_not_serving_drift():
    ref = frame(20_000, 1, labels=np.zeros(20_000, np.int64))
    cur = frame(100_000, 2, shift=0.08, labels=np.zeros(100_000, np.int64))  # real but trivial
    v = drift.serving_health(cur, ref, CFG, **W)
    assert v.status == "no_drift", v.reason
    assert min(v.details["p_values"].values()) < 1e-4  # KS alone would have alarmed


def test_latent_dim_is_recovered_from_the_log_whatever_the_scale():
    for scale in (1.0, 0.5, 3.0):
        assert drift.latent_dim(frame(50, 1, zscale=scale)) == D


def test_request_mix_scaled_z_fires_and_output_monitors_leave_it_out():
    ref = frame(3000, 1)
    cur = frame(2000, 2, zscale=0.5)
    v = drift.request_mix(cur, SHARES, CFG, **W)
    assert v.status == "drift" and "z_norm" in v.drifted
    assert v.scores["z_norm/mean_ratio"] == pytest.approx(0.25, abs=0.01)
    # the outputs of non-standard latents are not compared with the reference or real data
    sh = drift.serving_health(cur, ref, CFG, **W)
    assert sh.status == "insufficient_data" and sh.details["non_standard_latent_rows"] == 2000
    base = drift.staleness_baseline(ref, frame(600, 3), CFG)
    st = drift.staleness(cur, frame(600, 3), base, CFG, **W)
    assert st.status == "insufficient_data" and st.details["non_standard_latent_rows"] == 2000


def test_request_mix_accounts_for_both_sample_sizes():
    # identical mixes, 2,000 baseline rows vs 5,000 current: no drift (FINDINGS: Evidently's
    # chisquare, treating the reference shares as exact, gave p = 1.5e-7 here)
    rng = np.random.default_rng(5)
    p = np.array([0.3, 0.2, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05])
    base_counts = np.bincount(rng.choice(10, 2000, p=p), minlength=10)
    shares = {k: c / 2000 for k, c in enumerate(base_counts)}
    alarms = 0
    for seed in range(20):
        cur = frame(5000, 100 + seed, labels=np.random.default_rng(seed).choice(10, 5000, p=p))
        alarms += drift.request_mix(cur, shares, CFG, baseline_n=2000, **W).status == "drift"
    assert alarms <= 1
    # a real change of mix is seen
    q = np.r_[p[:2][::-1], p[2:]]
    cur = frame(5000, 7, labels=np.random.default_rng(7).choice(10, 5000, p=q))
    v = drift.request_mix(cur, shares, CFG, baseline_n=2000, **W)
    assert v.status == "drift" and v.drifted == ["labels"]


def test_request_mix_rejects_a_bad_baseline():
    with pytest.raises(ValueError, match="sum to 1"):
        drift.request_mix(frame(1000, 1), {0: 0.5, 1: 0.2}, CFG, **W)


def test_staleness_uses_an_unbiased_distance_so_window_size_does_not_matter():
    ref, real = frame(3200, 1), frame(600, 2)
    base = drift.staleness_baseline(ref, real, CFG)
    small = drift.staleness(frame(400, 3), real, base, CFG, **W)
    big = drift.staleness(frame(20_000, 4), real, base, CFG, **W)
    assert small.status == big.status == "no_drift"
    assert abs(small.scores["mmd2_excess"]) < CFG.staleness_margin
    assert abs(big.scores["mmd2_excess"]) < CFG.staleness_margin
    shifted = frame(600, 5, shift=0.6)  # the world moved: new real data of another style
    v = drift.staleness(frame(2000, 6), shifted, base, CFG, **W)
    assert v.status == "drift" and v.drifted == ["mmd2_excess"]
    assert v.scores["mmd2_excess"] > CFG.staleness_margin


def test_mmd2_unbiased_is_zero_mean_under_the_null():
    rng = np.random.default_rng(0)
    vals = [drift.mmd2_unbiased(rng.standard_normal((60, 3)), rng.standard_normal((40, 3)), 1.0)
            for _ in range(200)]
    assert abs(np.mean(vals)) < 3 * np.std(vals) / np.sqrt(len(vals))
    assert drift.mmd2_unbiased(rng.standard_normal((60, 3)),
                               rng.standard_normal((40, 3)) + 1, 1.0) > 0.1


def test_verdicts_round_trip_through_the_verdict_log(tmp_path):
    v = drift.serving_health(frame(1000, 2), frame(2000, 1), CFG, **W)
    record_verdict(v, tmp_path)
    (back,) = read_verdicts(monitor="serving_health", directory=tmp_path)
    assert back == v


def test_config_load_from_toml_and_env(tmp_path):
    p = tmp_path / "drift.toml"
    p.write_text("[drift]\nmin_samples = 50\nstaleness_margin = 0.08\n")
    cfg = DriftConfig.load(p, env={"GENLINE_DRIFT_MIN_SAMPLES": "60", "OTHER": "x"})
    assert cfg.min_samples == 60 and cfg.staleness_margin == 0.08
    assert DriftConfig.load(tmp_path / "absent.toml", env={}) == DriftConfig()
    with pytest.raises(DriftConfigError, match="GENLINE_DRIFT_MIN_SAMPLE: unknown drift setting"):
        DriftConfig.load(p, env={"GENLINE_DRIFT_MIN_SAMPLE": "60"})
    with pytest.raises(DriftConfigError, match="min_samples must be int, got 'many'"):
        DriftConfig.load(p, env={"GENLINE_DRIFT_MIN_SAMPLES": "many"})
    p.write_text("serving_alpha = 2.0\n")
    with pytest.raises(DriftConfigError, match="serving_alpha must be in"):
        DriftConfig.load(p, env={})
    p.write_text("min_samples = [")
    with pytest.raises(DriftConfigError, match="not valid TOML"):
        DriftConfig.load(p, env={})


def test_config_load_defaults_to_the_state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLINE_HOME", str(tmp_path))
    (tmp_path / "drift.toml").write_text("report_keep = 3\n")
    assert DriftConfig.load(env={}).report_keep == 3


def test_reports_are_written_and_pruned(tmp_path):
    cfg = DriftConfig(report_keep=2, report_columns=2, report_sample=300)
    ref = frame(1500, 1)
    paths = []
    for i in range(3):
        cur = frame(800, 10 + i, shift=0.5)
        v = drift.serving_health(cur, ref, cfg, report_dir=tmp_path,
                                 **{**W, "window_key": f"2026-12-02-1{i}:00"})
        assert v.status == "drift" and v.report
        paths.append(v.report)
        os.utime(v.report, ns=(10**18 + i, 10**18 + i))
    left = sorted(p.name for p in tmp_path.glob("*.html"))
    assert left == sorted(os.path.basename(p) for p in paths[1:])
    html = open(paths[-1], encoding="utf-8").read()
    assert "wasserstein" in html.lower()
    assert drift.prune_reports(tmp_path, 0) and not list(tmp_path.glob("*.html"))
    with pytest.raises(ValueError):
        drift.prune_reports(tmp_path, -1)


def test_ks_wasserstein_agrees_with_scipy():
    from scipy import stats

    rng = np.random.default_rng(3)
    for n, m, shift in ((40, 200, 0.0), (500, 300, 0.3), (3000, 5000, 0.05)):
        a = rng.standard_normal(n)
        b = np.round(rng.standard_normal(m) + shift, 2)  # ties, like logged features
        d, p, w = drift.ks_wasserstein(a, b)
        ks = stats.ks_2samp(a, b, method="asymp")
        assert d == pytest.approx(ks.statistic, abs=1e-12)
        assert p == pytest.approx(ks.pvalue, rel=0.1, abs=1e-4)
        assert w == pytest.approx(stats.wasserstein_distance(a, b) / np.std(a), rel=1e-9)


def test_mmd_permutation_pvalue_null_and_shift():
    rng = np.random.default_rng(4)
    xs = [rng.standard_normal((40, 4)) for _ in range(3)]
    same = [rng.standard_normal((40, 4)) for _ in range(3)]
    moved = [rng.standard_normal((40, 4)) + 0.8 for _ in range(3)]
    _, p_same = drift.mmd_permutation_pvalue(xs, same, 2.0, permutations=99)
    stat, p_moved = drift.mmd_permutation_pvalue(xs, moved, 2.0, permutations=99)
    assert p_same > 0.05 and p_moved == pytest.approx(0.01) and stat > 0
