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

The verdict's statistics are computed here with numpy/scipy (the definitions Evidently uses:
normalised Wasserstein = W1 / std(reference)); with `report_dir` an Evidently Report with the
same named stat tests is rendered on the keys that scored highest and saved as HTML.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genline import clock
from genline.drift_verdicts import Verdict
from genline.embedding import EMBEDDING_FEATURES
from genline.serving.features import IMAGE_FEATURES, LATENT_FEATURES

DRIFT_FEATURES: tuple[str, ...] = (*IMAGE_FEATURES, "pred_confidence", *EMBEDDING_FEATURES)
CONFIG_FILE = "drift.toml"
ENV_PREFIX = "GENLINE_DRIFT_"
REPORT_PREFIX = "drift-"
_SEED = 20261202  # subsampling is deterministic: the same window gives the same verdict


class DriftConfigError(ValueError):
    """A drift setting that is unknown or has the wrong type or range."""


@dataclass(frozen=True)
class DriftConfig:
    """Every drift setting, with the calibrated defaults (docs/drift.md says why).

    Attributes:
        min_samples: rows per label (in the window and in what it is compared with) for the label
            to be tested; with no testable label the verdict is "insufficient_data".
        window_minutes: length of one monitoring window (Dagster partitions).
        report_keep: HTML reports kept per report directory (the verdict numbers stay forever).
        report_columns: (label, feature) keys drawn in the Evidently HTML report (the highest
            scores; rendering every key costs ~0.3 s each).
        report_sample: rows per side the HTML report is rendered on.
        max_rows_per_label: current rows per label the statistics use (a seeded subsample above
            it: 1e6-row windows cost about what 1e5-row windows cost).
        serving_stat_test, serving_alpha, serving_min_effect: serving health's named tests: KS
            p < serving_alpha / keys (family-wise) and normalised Wasserstein >= serving_min_effect.
        label_stat_test, label_alpha, label_min_tvd: request mix on label shares: G-test
            p < label_alpha and total variation distance >= label_min_tvd.
        z_stat_test, z_alpha, z_min_effect: request mix on the latent: one-sample KS vs the exact
            distribution, p < z_alpha / 2 and KS statistic >= z_min_effect.
        z_filter_p: a row's latent counts as a N(0, I) draw when neither its z_norm^2 (chi2(D))
            nor its z_mean (normal) is beyond this two-sided tail probability.
        staleness_stat_test, staleness_margin, staleness_max_rows: staleness: unbiased MMD^2
            (Gaussian kernel, median-heuristic bandwidth fixed at publish) averaged over labels;
            drift when it exceeds the publish-time value by staleness_margin; at most
            staleness_max_rows rows per label per side enter the kernel sums.
        input_alpha, input_min_effect: input_batch's KS and Wasserstein limits.
    """

    min_samples: int = 30
    window_minutes: float = 60.0
    report_keep: int = 48
    report_columns: int = 8
    report_sample: int = 2000
    max_rows_per_label: int = 20000
    serving_stat_test: str = "ks+wasserstein"
    serving_alpha: float = 0.01
    serving_min_effect: float = 0.1
    label_stat_test: str = "g_test+tvd"
    label_alpha: float = 0.01
    label_min_tvd: float = 0.05
    z_stat_test: str = "ks_exact"
    z_alpha: float = 0.01
    z_min_effect: float = 0.05
    z_filter_p: float = 1e-4
    staleness_stat_test: str = "mmd2_unbiased"
    staleness_margin: float = 0.05
    staleness_max_rows: int = 400
    input_alpha: float = 0.01
    input_min_effect: float = 0.1

    def __post_init__(self) -> None:
        for name in ("min_samples", "report_keep", "report_columns", "report_sample",
                     "max_rows_per_label", "staleness_max_rows"):
            if getattr(self, name) < 1:
                raise DriftConfigError(f"drift setting {name} must be >= 1, got "
                                       f"{getattr(self, name)}")
        if self.min_samples < 2:
            raise DriftConfigError(f"drift setting min_samples must be >= 2, got "
                                   f"{self.min_samples}")
        for name in ("serving_alpha", "label_alpha", "z_alpha", "z_filter_p", "input_alpha"):
            if not 0 < getattr(self, name) < 1:
                raise DriftConfigError(f"drift setting {name} must be in (0, 1), got "
                                       f"{getattr(self, name)}")
        if not self.window_minutes > 0:
            raise DriftConfigError(f"drift setting window_minutes must be > 0, got "
                                   f"{self.window_minutes}")

    @classmethod
    def load(cls, path: str | Path | None = None,
             env: Mapping[str, str] | None = None) -> DriftConfig:
        """Defaults, then `$GENLINE_HOME/drift.toml` (or `path`), then GENLINE_DRIFT_* variables.

        Raises:
            DriftConfigError: an unknown key, or a value of the wrong type or range (the message
                names the key and where it came from).
        """
        from genline.paths import state_dir

        env = os.environ if env is None else env
        known = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        toml_path = Path(path) if path is not None else state_dir() / CONFIG_FILE
        if toml_path.is_file():
            try:
                data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise DriftConfigError(f"{toml_path}: not valid TOML ({exc})") from exc
            data = data.get("drift", data)
            for key, raw in data.items():
                values[key] = _coerce(key, raw, known, str(toml_path))
        for var, raw in env.items():
            if var.startswith(ENV_PREFIX):
                key = var[len(ENV_PREFIX):].lower()
                values[key] = _coerce(key, raw, known, var)
        return replace(cls(), **values)


def _coerce(key: str, raw: Any, known: dict[str, Any], where: str) -> Any:
    if key not in known:
        raise DriftConfigError(f"{where}: unknown drift setting {key!r} (known: {sorted(known)})")
    kind = {"int": int, "float": float, "str": str}[str(known[key])]
    try:
        if kind is int and isinstance(raw, float) and not raw.is_integer():
            raise ValueError(raw)
        return kind(raw)
    except (TypeError, ValueError) as exc:
        raise DriftConfigError(f"{where}: drift setting {key} must be {kind.__name__}, got "
                               f"{raw!r}") from exc


# --- schema and latent ------------------------------------------------------------------------


def check_schema(df: pd.DataFrame, required: Sequence[str]) -> str | None:
    """The schema fault of `df`, or None: a required column missing or entirely null.

    A renamed column reads as missing (its new name is listed among the unexpected ones).
    """
    if not isinstance(df, pd.DataFrame):
        return f"expected a pandas DataFrame, got {type(df).__name__}"
    missing = [c for c in required if c not in df.columns]
    if missing:
        extra = sorted(str(c) for c in df.columns if c not in required)
        hint = f"; columns not expected: {extra}" if extra else ""
        return f"missing column(s) {missing}{hint}"
    if len(df):
        null = [c for c in required if df[c].isna().all()]
        if null:
            return f"column(s) {null} are entirely null ({len(df)} rows)"
    return None


def latent_dim(df: pd.DataFrame) -> int | None:
    """The latent dimension D recovered from the logged statistics (scale-free):
    z_norm^2 = D (z_std^2 + z_mean^2) holds row by row."""
    if not set(LATENT_FEATURES) <= set(df.columns) or not len(df):
        return None
    denom = df["z_std"].to_numpy(float) ** 2 + df["z_mean"].to_numpy(float) ** 2
    ok = denom > 0
    if not ok.any():
        return None
    return int(round(float(np.nanmedian(df["z_norm"].to_numpy(float)[ok] ** 2 / denom[ok]))))


def standard_latent(df: pd.DataFrame, cfg: DriftConfig, dim: int | None = None) -> np.ndarray:
    """Boolean mask of the rows whose latent looks like one draw of N(0, I_D)."""
    from scipy import stats

    dim = dim or latent_dim(df)
    if dim is None:
        return np.ones(len(df), bool)
    p = cfg.z_filter_p / 2
    n2 = df["z_norm"].to_numpy(float) ** 2
    lo, hi = stats.chi2.ppf(p, dim), stats.chi2.isf(p, dim)
    zlim = stats.norm.isf(p)
    zm = np.abs(df["z_mean"].to_numpy(float)) * np.sqrt(dim)
    return (n2 >= lo) & (n2 <= hi) & (zm <= zlim)


# --- the per-label two-sample comparison ------------------------------------------------------


def _labels(df: pd.DataFrame) -> np.ndarray:
    return df["label"].to_numpy().astype(np.int64)


def _by_label(df: pd.DataFrame, cap: int | None = None) -> dict[int, pd.DataFrame]:
    out: dict[int, pd.DataFrame] = {}
    rng = np.random.default_rng(_SEED)
    for k, part in df.groupby(_labels(df), sort=True):
        if cap is not None and len(part) > cap:
            part = part.iloc[np.sort(rng.choice(len(part), cap, replace=False))]
        out[int(k)] = part
    return out


def wasserstein_norm(reference: np.ndarray, current: np.ndarray) -> float:
    """Evidently's "wasserstein": W1(reference, current) / max(std(reference), 0.001)."""
    from scipy import stats

    return float(stats.wasserstein_distance(reference, current)
                 / max(float(np.std(reference)), 0.001))


def ks_wasserstein(reference: np.ndarray, current: np.ndarray) -> tuple[float, float, float]:
    """Two-sample KS statistic, its asymptotic p-value (Stephens' small-sample correction) and
    the normalised Wasserstein distance, from one merge of the sorted samples (scipy's
    ks_2samp and wasserstein_distance give the same numbers at ~10x the cost per call).
    """
    from scipy.special import kolmogorov

    a, b = np.sort(reference), np.sort(current)
    n, m = len(a), len(b)
    grid = np.concatenate([a, b])
    grid.sort(kind="mergesort")
    fa = np.searchsorted(a, grid, side="right") / n
    fb = np.searchsorted(b, grid, side="right") / m
    d = float(np.abs(fa - fb).max())
    en = np.sqrt(n * m / (n + m))
    p = float(min(1.0, kolmogorov((en + 0.12 + 0.11 / en) * d)))
    w = float((np.abs(fa - fb)[:-1] * np.diff(grid)).sum()) / max(float(np.std(a)), 0.001)
    return d, p, w


def compare_per_label(current: pd.DataFrame, reference: pd.DataFrame, features: Sequence[str],
                      cfg: DriftConfig, alpha: float, min_effect: float) -> dict[str, Any]:
    """Two-sample KS and normalised Wasserstein for every (label, feature) with enough rows.

    Returns:
        {"scores", "thresholds", "drifted", "p_values", "tested_labels", "skipped_labels",
         "n_current", "n_reference"}; keys are "label=K/feature".
    """
    cur, ref = _by_label(current, cfg.max_rows_per_label), _by_label(reference)
    tested = [k for k in sorted(set(cur) | set(ref))
              if len(cur.get(k, ())) >= cfg.min_samples and len(ref.get(k, ())) >= cfg.min_samples]
    skipped = {str(k): [len(cur.get(k, ())), len(ref.get(k, ()))]
               for k in sorted(set(cur) | set(ref)) if k not in tested and k in cur}
    m = max(1, len(tested) * len(features))
    scores: dict[str, float] = {}
    pvals: dict[str, float] = {}
    drifted: list[str] = []
    for k in tested:
        for f in features:
            a = ref[k][f].to_numpy(float)
            b = cur[k][f].to_numpy(float)
            a, b = a[np.isfinite(a)], b[np.isfinite(b)]
            key = f"label={k}/{f}"
            if len(a) < cfg.min_samples or len(b) < cfg.min_samples:
                continue
            _, p, w = ks_wasserstein(a, b)
            scores[key], pvals[key] = round(w, 6), p
            if p < alpha / m and w >= min_effect:
                drifted.append(key)
    return {"scores": scores, "p_values": pvals, "drifted": drifted, "tested_labels": tested,
            "skipped_labels": skipped, "keys": m,
            "thresholds": {"wasserstein": min_effect, "ks_p_value": alpha / m},
            "n_current": int(sum(len(cur[k]) for k in tested)),
            "n_reference": int(sum(len(ref[k]) for k in tested))}


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
    for what, df in (("the window", current), ("the reference profile", reference)):
        fault = check_schema(df, ["label", *features])
        if fault:
            return _schema_error("serving_health", w, what, fault, len(current))
    excluded = 0
    if set(LATENT_FEATURES) <= set(current.columns):
        mask = standard_latent(current, cfg)
        excluded = int((~mask).sum())
        current = current.loc[mask]
    cur, ref = _clean(current, features), _clean(reference, features)
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


def _standardise(df: pd.DataFrame, features: Sequence[str], loc: np.ndarray,
                 scale: np.ndarray) -> np.ndarray:
    return (df[list(features)].to_numpy(float) - loc) / scale


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.maximum(d, 0.0)


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    """Unbiased MMD^2 (Gretton et al. 2012, eq. 3) with k(a, b) = exp(-|a-b|^2 / (2 h^2)).

    Its expectation does not depend on the sample sizes, so a window and the publish-time
    comparison can be compared even when their sizes differ.
    """
    m, n = len(x), len(y)
    g = -0.5 / bandwidth**2
    kxx, kyy, kxy = (np.exp(g * _sq_dists(x, x)), np.exp(g * _sq_dists(y, y)),
                     np.exp(g * _sq_dists(x, y)))
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                 + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean())


def mmd_permutation_pvalue(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], bandwidth: float,
                           permutations: int = 200, seed: int = _SEED) -> tuple[float, float]:
    """Gretton et al. (2012) permutation test of the label-summed unbiased MMD^2.

    Args:
        xs, ys: per label, the (n_k, d) and (m_k, d) samples; rows are permuted within labels.
        bandwidth: the Gaussian kernel's width.

    Returns:
        (statistic, p-value), p = (1 + #{permuted >= observed}) / (1 + permutations).
    """
    rng = np.random.default_rng(seed)
    g = -0.5 / bandwidth**2
    total = np.zeros(permutations + 1)
    for x, y in zip(xs, ys, strict=True):
        n, m = len(x), len(y)
        z = np.concatenate([x, y])
        k = np.exp(g * _sq_dists(z, z))  # (N, N)
        diag = np.diag(k)
        # column 0 is the observed split, the others random relabellings (all at once: K @ S)
        s = np.zeros((n + m, permutations + 1))
        s[:n, 0] = 1
        for j in range(1, permutations + 1):
            s[rng.permutation(n + m)[:n], j] = 1
        ks, kt = k @ s, k @ (1 - s)
        sxx = (s * ks).sum(0) - diag @ s
        syy = ((1 - s) * kt).sum(0) - diag @ (1 - s)
        sxy = (s * kt).sum(0)
        total += sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2 * sxy / (n * m)
    observed = float(total[0])
    return observed, float((1 + np.sum(total[1:] >= observed)) / (1 + permutations))


def _cap(df: pd.DataFrame, cap: int) -> pd.DataFrame:
    if len(df) <= cap:
        return df
    rng = np.random.default_rng(_SEED)
    return df.iloc[np.sort(rng.choice(len(df), cap, replace=False))]


def _mmd_per_label(outputs: pd.DataFrame, real: pd.DataFrame, spec: Mapping[str, Any],
                   cfg: DriftConfig) -> dict[int, float]:
    feats = spec["features"]
    loc, scale = np.asarray(spec["loc"]), np.asarray(spec["scale"])
    out_l, real_l = _by_label(outputs), _by_label(real)
    res: dict[int, float] = {}
    for k in sorted(set(out_l) & set(real_l)):
        a, b = out_l[k], real_l[k]
        if len(a) < cfg.min_samples or len(b) < cfg.min_samples:
            continue
        res[k] = mmd2_unbiased(_standardise(_cap(a, cfg.staleness_max_rows), feats, loc, scale),
                               _standardise(_cap(b, cfg.staleness_max_rows), feats, loc, scale),
                               spec["bandwidth"])
    return res


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
    for what, df in (("the window", current), ("the real features", real_features)):
        fault = check_schema(df, ["label", *feats])
        if fault:
            return _schema_error("staleness", w, what, fault, len(current))
    excluded = 0
    if set(LATENT_FEATURES) <= set(current.columns):
        mask = standard_latent(current, cfg)
        excluded = int((~mask).sum())
        current = current.loc[mask]
    cur, real = _clean(current, feats), _clean(real_features, feats)
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


# --- Evidently HTML reports and their retention -----------------------------------------------


def _report_path(report_dir: str | Path, monitor: str, w: _Window) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in w.window_key)
    return Path(report_dir) / f"{REPORT_PREFIX}{monitor}-{w.model}-v{w.version}-{safe}.html"


def _wide(df: pd.DataFrame, keys: Sequence[str], sample: int) -> pd.DataFrame:
    """One column per "label=K/feature" key (NaN on other labels' rows), on a seeded sample."""
    df = _cap(df, sample)
    labels = _labels(df)
    out = {}
    for key in keys:
        lab, feat = key.split("/", 1)
        k = int(lab.split("=", 1)[1])
        out[key] = np.where(labels == k, df[feat].to_numpy(float), np.nan)
    return pd.DataFrame(out)


def _save_html(snapshot: Any, path: Path, keep: int) -> str:
    from genline.fsutil import atomic_write_bytes

    tmp = path.with_name(f".{path.name}.render.html")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        snapshot.save_html(str(tmp))
        atomic_write_bytes(path, tmp.read_bytes())
    finally:
        tmp.unlink(missing_ok=True)
    prune_reports(path.parent, keep)
    return str(path)


def _report(current: pd.DataFrame, reference: pd.DataFrame, scores: Mapping[str, float],
            method: str, threshold: float, cfg: DriftConfig, report_dir: str | Path,
            monitor: str, w: _Window) -> str:
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    keys = sorted(scores, key=lambda k: -abs(scores[k]))[: cfg.report_columns]
    cur, ref = _wide(current, keys, cfg.report_sample), _wide(reference, keys, cfg.report_sample)
    dd = DataDefinition(numerical_columns=list(keys))
    rep = Report([ValueDrift(column=k, method=method, threshold=threshold) for k in keys])
    snap = rep.run(Dataset.from_pandas(cur, data_definition=dd),  # current first, then reference
                   Dataset.from_pandas(ref, data_definition=dd))
    return _save_html(snap, _report_path(report_dir, monitor, w), cfg.report_keep)


def _request_mix_report(current: pd.DataFrame, base: Mapping[int, float], dim: int,
                        cfg: DriftConfig, report_dir: str | Path, w: _Window) -> str:
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    cur = _cap(current, cfg.report_sample)
    rng = np.random.default_rng(_SEED)
    n = max(len(cur), 1000)
    labels = list(base)
    p = np.array([base[k] for k in labels])
    z = rng.standard_normal((n, dim))  # the exact N(0, I) reference, drawn
    ref = pd.DataFrame({"label": rng.choice(labels, n, p=p / p.sum()).astype(str),
                        "z_mean": z.mean(1), "z_norm": np.linalg.norm(z, axis=1)})
    cur = pd.DataFrame({"label": _labels(cur).astype(str),
                        "z_mean": cur["z_mean"].to_numpy(float),
                        "z_norm": cur["z_norm"].to_numpy(float)})
    dd = DataDefinition(numerical_columns=["z_mean", "z_norm"], categorical_columns=["label"])
    rep = Report([ValueDrift(column="label", method="TVD", threshold=cfg.label_min_tvd),
                  ValueDrift(column="z_mean", method="ks", threshold=cfg.z_alpha),
                  ValueDrift(column="z_norm", method="ks", threshold=cfg.z_alpha)])
    snap = rep.run(Dataset.from_pandas(cur, data_definition=dd),
                   Dataset.from_pandas(ref, data_definition=dd))
    return _save_html(snap, _report_path(report_dir, "request_mix", w), cfg.report_keep)


def prune_reports(report_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the `keep` newest drift HTML reports in `report_dir` (by mtime, then
    name); the verdict numbers are kept forever elsewhere.

    Returns:
        The deleted paths.
    """
    if keep < 0:
        raise ValueError(f"keep must be >= 0, got {keep}")
    d = Path(report_dir)
    if not d.is_dir():
        return []
    reports = sorted((p for p in d.glob(f"{REPORT_PREFIX}*.html") if p.is_file()),
                     key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)
    gone = reports[keep:]
    for p in gone:
        p.unlink(missing_ok=True)
    return gone
