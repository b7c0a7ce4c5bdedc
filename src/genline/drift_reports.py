"""Evidently HTML drift reports (rendered on the keys that scored highest) and their retention."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from genline.drift_config import DriftConfig
from genline.drift_stats import _SEED, _cap, _labels

if TYPE_CHECKING:
    from genline.drift import _Window

REPORT_PREFIX = "drift-"


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
