"""Drift monitoring of the served generator: pure functions from DataFrames to `Verdict`s.

Three questions about what is served, plus one about what arrives (see docs/drift.md):

- `serving_health`: served output features, per label, vs the serving version's reference
  profile. A fixed generator fed N(0, I) latents reproduces its reference distribution exactly,
  so this is a two-sample test with an exact null: two-sample KS per (label, feature) at a
  family-wise alpha (Bonferroni) AND a normalised Wasserstein effect of at least
  `serving_min_effect` (so a huge window does not alarm on a trivial difference).
- `request_mix`: label shares vs the traffic baseline (two-sample G-test + total variation
  distance) and the latent statistics vs their exact distributions under z ~ N(0, I)
  (z_mean * sqrt(D) ~ N(0, 1), z_norm^2 ~ chi2(D)), one-sample KS.
- `staleness`: served outputs vs real features of the newest accepted data, per label, by the
  unbiased MMD^2 (Gaussian kernel) on standardised features; drift when the label-averaged MMD^2
  exceeds the same comparison made at publish time (`staleness_baseline`) by `staleness_margin`.
- `input_batch`: an incoming batch's real features vs the training data (same rule as
  serving_health: real vs real has an exact null too).

Serving health and staleness compare only rows whose latent looks like a draw of N(0, I): the
outputs of a scaled or truncated z say nothing about the model (request_mix reports those).
Below `min_samples` rows per label a label is not tested; with no testable label the verdict is
"insufficient_data". A missing, renamed or all-null column is an "error" verdict.

The verdict's statistics are computed with numpy/scipy in `genline.drift_stats` (the definitions
Evidently uses: normalised Wasserstein = W1 / std(reference)); with `report_dir` an Evidently
Report with the same named stat tests is rendered on the keys that scored highest and saved as
HTML (`genline.drift_reports`). The settings are `genline.drift_config.DriftConfig`; this module
re-exports the public names of all three.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genline import clock
from genline.drift_config import CONFIG_FILE, ENV_PREFIX, DriftConfig, DriftConfigError
from genline.drift_reports import REPORT_PREFIX, _report, _request_mix_report, prune_reports
from genline.drift_stats import (
    _cap,
    _labels,
    _mmd_per_label,
    _sq_dists,
    _standardise,
    check_schema,
    compare_per_label,
    ks_wasserstein,
    latent_dim,
    mmd2_unbiased,
    mmd_permutation_pvalue,
    standard_latent,
    wasserstein_norm,
)
from genline.drift_verdicts import Verdict
from genline.embedding import EMBEDDING_FEATURES
from genline.serving.features import IMAGE_FEATURES, LATENT_FEATURES

DRIFT_FEATURES: tuple[str, ...] = (*IMAGE_FEATURES, "pred_confidence", *EMBEDDING_FEATURES)

# what callers import from genline.drift: the monitors, plus the settings (drift_config), the
# statistics (drift_stats) and the report retention (drift_reports) re-exported
__all__ = [
    "CONFIG_FILE", "DRIFT_FEATURES", "EMBEDDING_FEATURES", "ENV_PREFIX", "REPORT_PREFIX",
    "DriftConfig", "DriftConfigError", "check_schema", "compare_per_label", "input_batch",
    "ks_wasserstein", "latent_dim", "mmd2_unbiased", "mmd_permutation_pvalue", "prune_reports",
    "request_mix", "serving_health", "staleness", "staleness_baseline", "standard_latent",
    "wasserstein_norm",
]


# --- verdict helpers --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    model: str
    version: int
    window_key: str
    window_start: float
    window_end: float


def _verdict(monitor: str, status: str, w: _Window, n: int, reason: str, **kw: Any) -> Verdict:
    return Verdict(monitor=monitor, status=status, model=w.model, version=int(w.version),
                   window_key=w.window_key, window_start=float(w.window_start),
                   window_end=float(w.window_end), n=int(n), reason=reason,
                   computed_at=clock.now().timestamp(), **kw)


def _schema_error(monitor: str, w: _Window, what: str, fault: str, n: int) -> Verdict:
    return _verdict(monitor, "error", w, n, f"schema fault in {what}: {fault}",
                    details={"schema_fault": fault, "where": what})


def _fmt_drifted(drifted: Sequence[str], scores: Mapping[str, float], limit: int = 4) -> str:
    top = sorted(drifted, key=lambda k: -abs(scores.get(k, 0.0)))[:limit]
    more = f" (+{len(drifted) - limit} more)" if len(drifted) > limit else ""
    return ", ".join(f"{k}={scores.get(k, float('nan')):.3g}" for k in top) + more


def _clean(df: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    return df.loc[df["label"].notna(), ["label", *features]]


def _standard_window(monitor: str, w: _Window, current: pd.DataFrame, other: pd.DataFrame,
                     other_what: str, features: Sequence[str], cfg: DriftConfig
                     ) -> Verdict | tuple[pd.DataFrame, pd.DataFrame, int]:
    """Serving health's and staleness's common start: schema-check the window and what it is
    compared with, keep the window's standard-latent rows (when the latent is logged), clean both.

    Returns:
        The "error" verdict of a schema fault, or (window rows, other rows, window rows left out).
    """
    for what, df in (("the window", current), (other_what, other)):
        fault = check_schema(df, ["label", *features])
        if fault:
            return _schema_error(monitor, w, what, fault, len(current))
    excluded = 0
    if set(LATENT_FEATURES) <= set(current.columns):
        mask = standard_latent(current, cfg)
        excluded = int((~mask).sum())
        current = current.loc[mask]
    return _clean(current, features), _clean(other, features), excluded


# --- the monitors -----------------------------------------------------------------------------


def serving_health(current: pd.DataFrame, reference: pd.DataFrame, cfg: DriftConfig, *,
                   model: str, version: int, window_key: str, window_start: float,
                   window_end: float, report_dir: str | Path | None = None,
                   features: Sequence[str] = DRIFT_FEATURES) -> Verdict:
    """Served output features per label vs the serving version's reference profile.

    Args:
        current: the window's OK app rows of this version: `label` + `features` (+ the latent
            statistics, when logged: rows with a non-standard latent are left out).
        reference: the version's reference profile rows: `label` + `features`.
        features: the compared columns (default `DRIFT_FEATURES`).
    """
    w = _Window(model, version, window_key, window_start, window_end)
    prep = _standard_window("serving_health", w, current, reference, "the reference profile",
                            features, cfg)
    if isinstance(prep, Verdict):
        return prep
    cur, ref, excluded = prep
    res = compare_per_label(cur, ref, features, cfg, cfg.serving_alpha, cfg.serving_min_effect)
    details = {"stat_test": cfg.serving_stat_test, "p_values": res["p_values"],
               "tested_labels": res["tested_labels"], "skipped_labels": res["skipped_labels"],
               "n_reference": res["n_reference"], "non_standard_latent_rows": excluded,
               "min_samples": cfg.min_samples}
    if not res["tested_labels"]:
        return _verdict("serving_health", "insufficient_data", w, len(cur),
                        f"no label has {cfg.min_samples} rows in both the window ({len(cur)} "
                        f"rows) and the reference ({len(ref)} rows)", details=details)
    report = _report(cur, ref, res["scores"], "wasserstein", cfg.serving_min_effect, cfg,
                     report_dir, "serving_health", w) if report_dir else None
    drift = bool(res["drifted"])
    reason = (f"served outputs differ from the reference profile: "
              f"{_fmt_drifted(res['drifted'], res['scores'])}" if drift else
              f"served outputs match the reference profile ({len(res['tested_labels'])} labels, "
              f"{len(res['scores'])} tests)")
    return _verdict("serving_health", "drift" if drift else "no_drift", w, res["n_current"],
                    reason, scores=res["scores"], thresholds=res["thresholds"],
                    drifted=res["drifted"], report=report, details=details)


def request_mix(current: pd.DataFrame, baseline_label_shares: Mapping[Any, float],
                cfg: DriftConfig, *, model: str, version: int, window_key: str,
                window_start: float, window_end: float, report_dir: str | Path | None = None,
                baseline_n: int | None = None, latent_dim_: int | None = None) -> Verdict:
    """What apps ask for: label shares vs the traffic baseline, latents vs N(0, I).

    Args:
        current: the window's OK app rows: `label`, `z_mean`, `z_std`, `z_norm`.
        baseline_label_shares: {label: share} of the traffic baseline (shares sum to 1).
        baseline_n: rows the baseline shares were counted from (a two-sample G-test); None
            treats the shares as exact (one-sample G-test).
        latent_dim_: D; recovered from the rows when None.
    """
    from scipy import stats

    w = _Window(model, version, window_key, window_start, window_end)
    fault = check_schema(current, ["label", *LATENT_FEATURES])
    if fault:
        return _schema_error("request_mix", w, "the window", fault, len(current))
    try:
        base = {int(k): float(v) for k, v in baseline_label_shares.items()}
    except (TypeError, ValueError) as exc:
        raise ValueError(f"baseline_label_shares must map labels to shares: {exc}") from exc
    total = sum(base.values())
    if not base or not np.isclose(total, 1.0, atol=1e-3) or min(base.values()) < 0:
        raise ValueError(f"baseline_label_shares must be non-negative and sum to 1, got "
                         f"sum {total:.4f} over {len(base)} labels")
    cur = current.loc[current["label"].notna() & current["z_norm"].notna()]
    n = len(cur)
    details: dict[str, Any] = {"stat_test": {"labels": cfg.label_stat_test, "z": cfg.z_stat_test},
                               "baseline_n": baseline_n, "min_samples": cfg.min_samples}
    if n < cfg.min_samples * max(1, len(base)):
        return _verdict("request_mix", "insufficient_data", w, n,
                        f"{n} rows; the request mix needs {cfg.min_samples} per baseline label "
                        f"({cfg.min_samples * len(base)})", details=details)
    labels = sorted(set(base) | set(_labels(cur).tolist()))
    counts = np.array([(cur["label"] == k).sum() for k in labels], float)
    shares = np.array([base.get(k, 0.0) for k in labels])
    tvd = 0.5 * float(np.abs(counts / n - shares).sum())
    if baseline_n:
        table = np.stack([counts, shares * baseline_n])
        table = table[:, table.sum(axis=0) > 0]
        p_lab = float(stats.chi2_contingency(table, lambda_="log-likelihood")[1])
    else:
        expected = shares * n
        unseen = (expected == 0) & (counts > 0)
        if unseen.any():
            p_lab = 0.0
        else:
            keep = expected > 0
            p_lab = float(stats.power_divergence(counts[keep], expected[keep],
                                                 lambda_="log-likelihood").pvalue)
    dim = latent_dim_ or latent_dim(cur)
    zm = cur["z_mean"].to_numpy(float) * np.sqrt(dim)
    n2 = cur["z_norm"].to_numpy(float) ** 2
    ks_mean = stats.kstest(zm, stats.norm.cdf)
    ks_norm = stats.kstest(n2, stats.chi2(dim).cdf)
    scores = {"labels/tvd": round(tvd, 6), "labels/g_test_p": p_lab,
              "z_mean/ks": round(float(ks_mean.statistic), 6),
              "z_norm/ks": round(float(ks_norm.statistic), 6),
              "z_mean/ks_p": float(ks_mean.pvalue), "z_norm/ks_p": float(ks_norm.pvalue),
              "z_norm/mean_ratio": round(float(np.mean(n2)) / dim, 6)}
    thresholds = {"labels/tvd": cfg.label_min_tvd, "labels/g_test_p": cfg.label_alpha,
                  "z_mean/ks": cfg.z_min_effect, "z_norm/ks": cfg.z_min_effect,
                  "z_mean/ks_p": cfg.z_alpha / 2, "z_norm/ks_p": cfg.z_alpha / 2}
    drifted = []
    if p_lab < cfg.label_alpha and tvd >= cfg.label_min_tvd:
        drifted.append("labels")
    for f, ks in (("z_mean", ks_mean), ("z_norm", ks_norm)):
        if ks.pvalue < cfg.z_alpha / 2 and ks.statistic >= cfg.z_min_effect:
            drifted.append(f)
    details.update({"latent_dim": dim, "label_shares": {str(k): round(c / n, 6) for k, c in
                                                          zip(labels, counts, strict=True)}})
    report = _request_mix_report(cur, base, dim, cfg, report_dir, w) if report_dir else None
    if drifted:
        parts = []
        if "labels" in drifted:
            parts.append(f"label shares moved (TVD {tvd:.3f}, G-test p {p_lab:.2g})")
        for f in ("z_mean", "z_norm"):
            if f in drifted:
                parts.append(f"{f} is not N(0, I)-like (KS {scores[f + '/ks']:.3f})")
        if "z_norm" in drifted:
            parts.append(f"mean z_norm^2/D = {scores['z_norm/mean_ratio']:.3f} (1 expected)")
        reason = "apps changed what they ask for: " + "; ".join(parts)
    else:
        reason = f"request mix as expected (TVD {tvd:.3f}, latent N(0, I)-like, D={dim})"
    return _verdict("request_mix", "drift" if drifted else "no_drift", w, n, reason,
                    scores=scores, thresholds=thresholds, drifted=drifted, report=report,
                    details=details)


# --- staleness --------------------------------------------------------------------------------


def staleness_baseline(reference_outputs: pd.DataFrame, real_features: pd.DataFrame,
                       cfg: DriftConfig, features: Sequence[str] = DRIFT_FEATURES
                       ) -> dict[str, Any]:
    """The publish-time comparison staleness is measured against (JSON-serialisable).

    Args:
        reference_outputs: the published version's reference profile rows (`label` + features).
        real_features: real data of the newest accepted dataset (`embedding.real_features`);
            held-out rows (not trained on) keep the baseline honest, since a generator sits
            closer to its own training images than to new ones.

    Raises:
        ValueError: a schema fault, or no label with `min_samples` rows on both sides.
    """
    for what, df in (("reference outputs", reference_outputs), ("real features", real_features)):
        fault = check_schema(df, ["label", *features])
        if fault:
            raise ValueError(f"staleness baseline: schema fault in the {what}: {fault}")
    real = _clean(real_features, features)
    x = real[list(features)].to_numpy(float)
    loc, scale = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6)
    z = _standardise(_cap(real, 2000), features, loc, scale)
    d = _sq_dists(z, z)[np.triu_indices(len(z), 1)]
    bandwidth = float(np.sqrt(0.5 * np.median(d))) if len(d) else 1.0  # median heuristic
    spec = {"features": list(features), "loc": loc.tolist(), "scale": scale.tolist(),
            "bandwidth": bandwidth}
    per_label = _mmd_per_label(_clean(reference_outputs, features), real, spec, cfg)
    if not per_label:
        raise ValueError(f"staleness baseline: no label has {cfg.min_samples} rows in both the "
                         f"reference outputs ({len(reference_outputs)}) and the real features "
                         f"({len(real_features)})")
    return {**spec, "stat_test": cfg.staleness_stat_test,
            "mmd2": {str(k): v for k, v in per_label.items()},
            "mmd2_mean": float(np.mean(list(per_label.values()))),
            "n_reference": len(reference_outputs), "n_real": len(real_features),
            "computed_at": clock.now().timestamp()}


def staleness(current: pd.DataFrame, real_features: pd.DataFrame, baseline: Mapping[str, Any],
              cfg: DriftConfig, *, model: str, version: int, window_key: str,
              window_start: float, window_end: float, report_dir: str | Path | None = None
              ) -> Verdict:
    """Served outputs vs the newest accepted real data, against the publish-time comparison.

    Drift when mean over labels of (MMD^2(window, real) - MMD^2 at publish) exceeds
    `cfg.staleness_margin`; only labels present in the baseline and with `min_samples` rows on
    both sides count. Rows with a non-standard latent are left out (request_mix's question).
    """
    w = _Window(model, version, window_key, window_start, window_end)
    feats = list(baseline.get("features", DRIFT_FEATURES))
    prep = _standard_window("staleness", w, current, real_features, "the real features", feats,
                            cfg)
    if isinstance(prep, Verdict):
        return prep
    cur, real, excluded = prep
    base = {int(k): float(v) for k, v in baseline["mmd2"].items()}
    now = {k: v for k, v in _mmd_per_label(cur, real, baseline, cfg).items() if k in base}
    details: dict[str, Any] = {"stat_test": cfg.staleness_stat_test,
                               "non_standard_latent_rows": excluded, "n_real": len(real),
                               "baseline_mmd2": baseline["mmd2"], "min_samples": cfg.min_samples,
                               "bandwidth": baseline["bandwidth"]}
    if not now:
        return _verdict("staleness", "insufficient_data", w, len(cur),
                        f"no label has {cfg.min_samples} standard-latent rows in the window "
                        f"({len(cur)} rows, {excluded} non-standard left out) and in the real "
                        f"data ({len(real)} rows)", details=details)
    excess = float(np.mean([now[k] - base[k] for k in now]))
    scores = {"mmd2_excess": round(excess, 6),
              **{f"label={k}/mmd2": round(v, 6) for k, v in now.items()}}
    drift = excess > cfg.staleness_margin
    report = _report(cur, real, {f"label={k}/{f}": 0.0 for k in now for f in feats},
                     "wasserstein", 0.1, cfg, report_dir, "staleness", w) if report_dir else None
    reason = (f"served outputs moved away from the newest real data: MMD^2 excess {excess:.3f} "
              f"> {cfg.staleness_margin} over {len(now)} labels" if drift else
              f"served outputs as close to the newest real data as at publish (MMD^2 excess "
              f"{excess:.3f} <= {cfg.staleness_margin})")
    return _verdict("staleness", "drift" if drift else "no_drift", w, len(cur), reason,
                    scores=scores, thresholds={"mmd2_excess": cfg.staleness_margin},
                    drifted=["mmd2_excess"] if drift else [], report=report,
                    reference=str(baseline.get("reference", "")), details=details)


def input_batch(batch_features: pd.DataFrame, training_features: pd.DataFrame,
                cfg: DriftConfig, *, model: str, window_key: str, window_start: float = 0.0,
                window_end: float = 0.0, version: int = 0, report_dir: str | Path | None = None,
                features: Sequence[str] = DRIFT_FEATURES) -> Verdict:
    """An incoming batch's real features vs the current training data (a warning, never a
    quarantine: validity is the validation suite's question)."""
    w = _Window(model, version, window_key, window_start, window_end)
    for what, df in (("the batch", batch_features), ("the training data", training_features)):
        fault = check_schema(df, ["label", *features])
        if fault:
            return _schema_error("input_batch", w, what, fault, len(batch_features))
    cur, ref = _clean(batch_features, features), _clean(training_features, features)
    res = compare_per_label(cur, ref, features, cfg, cfg.input_alpha, cfg.input_min_effect)
    details = {"stat_test": "ks+wasserstein", "p_values": res["p_values"],
               "tested_labels": res["tested_labels"], "skipped_labels": res["skipped_labels"],
               "n_reference": res["n_reference"], "min_samples": cfg.min_samples}
    if not res["tested_labels"]:
        return _verdict("input_batch", "insufficient_data", w, len(cur),
                        f"no label has {cfg.min_samples} rows in both the batch ({len(cur)}) and "
                        f"the training data ({len(ref)})", details=details)
    report = _report(cur, ref, res["scores"], "wasserstein", cfg.input_min_effect, cfg,
                     report_dir, "input_batch", w) if report_dir else None
    drift = bool(res["drifted"])
    reason = (f"the batch differs from the training data: "
              f"{_fmt_drifted(res['drifted'], res['scores'])}" if drift else
              "the batch matches the training data")
    return _verdict("input_batch", "drift" if drift else "no_drift", w, res["n_current"], reason,
                    scores=res["scores"], thresholds=res["thresholds"], drifted=res["drifted"],
                    report=report, details=details)
