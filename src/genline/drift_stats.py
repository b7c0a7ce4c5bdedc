"""The statistics behind the drift monitors (numpy/scipy), free of any verdict logic.

Schema checks and the latent filter, the per-label two-sample KS + normalised Wasserstein
comparison (the definitions Evidently uses: normalised Wasserstein = W1 / std(reference)), and the
unbiased MMD^2 (Gaussian kernel) with its permutation test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from genline.drift_config import DriftConfig
from genline.serving.features import LATENT_FEATURES

_SEED = 20261202  # subsampling is deterministic: the same window gives the same verdict


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


# --- MMD^2 (staleness) ------------------------------------------------------------------------


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
