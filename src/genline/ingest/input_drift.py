"""The input side of drift monitoring: an incoming batch vs the current training data.

This is a warning, never a quarantine. The validation suite decides whether a batch is valid
(readable, finite, in range, known labels); this decides whether a valid batch looks like the
data the serving model was trained on, with `genline.drift.input_batch` (KS + normalised
Wasserstein per feature, Evidently report). A batch of a new style (thicker strokes, a slant) is
accepted and flagged here, and later makes the staleness monitor fire on what is served.

Features: the image features of `genline.serving.features` (mean_intensity, ink_fraction),
computed on the real images, plus the evaluator's confidence and the embedding components when a
published model directory (evaluator ONNX + embedding.npz) is given. A daily batch holds a few
rows per label (about 6 of the built-in digits'): below `min_samples` per label the comparison is
pooled over labels ("label=all/<feature>" keys) rather than reported as insufficient; the batch's
class shares are bounded by the validation suite's class_balance check.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from genline.data import Dataset

if TYPE_CHECKING:
    import pandas as pd

    from genline.drift import DriftConfig
    from genline.drift_verdicts import Verdict

POOLED = -1  # the pseudo-label of a pooled comparison


def batch_features(ds: Dataset, model_dir: str | Path | None = None) -> pd.DataFrame:
    """The drift columns of real images: `label` + image features (+ evaluator and embedding
    columns when `model_dir` holds the evaluator ONNX and embedding.npz).

    Args:
        ds: the images (N, C, H, W) in [0, 1] and labels.
        model_dir: a published model directory, or None (image features only).
    """
    import pandas as pd

    from genline.serving import features as feat

    if model_dir is not None:
        from genline import contract
        from genline.embedding import Embedding, real_features

        evaluator = Path(model_dir) / contract.EVALUATOR_ONNX
        emb = Path(model_dir) / feat.EMBEDDING_FILE
        if evaluator.is_file() and emb.is_file():
            return real_features(ds.images, ds.labels, evaluator, Embedding.load(emb, evaluator))
    out = feat.output_features(np.asarray(ds.images, np.float32), ds.labels, None)
    return pd.DataFrame({k: np.asarray(v) for k, v in out.items()})


def day_bounds(day: str) -> tuple[float, float]:
    """Epoch seconds of the day's start and end (UTC)."""
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return start.timestamp(), (start + timedelta(days=1)).timestamp()


def check_input_batch(
    batch: Dataset,
    training: Dataset,
    *,
    day: str,
    model: str,
    cfg: DriftConfig | None = None,
    model_dir: str | Path | None = None,
    report_dir: str | Path | None = None,
    reference: str = "",
) -> Verdict:
    """Compare one day's batch with the training data; the verdict (not yet recorded).

    Args:
        batch: the day's validated batch.
        training: the current training dataset (the version the batch is compared with).
        day: the batch's day (YYYY-MM-DD): the verdict's window.
        model: the model name the verdict is filed under.
        cfg: drift settings (default `DriftConfig.load()`).
        model_dir: published model directory for the evaluator/embedding features, or None.
        report_dir: where the Evidently HTML report goes (None: no report).
        reference: what the batch was compared with (e.g. the dataset version's md5).

    Returns:
        An input_batch Verdict: drift / no_drift / insufficient_data / error.
    """
    from dataclasses import replace

    from genline.drift import DRIFT_FEATURES, DriftConfig, input_batch

    cfg = cfg or DriftConfig.load()
    cur, ref = batch_features(batch, model_dir), batch_features(training, model_dir)
    features = tuple(f for f in DRIFT_FEATURES if f in cur.columns and f in ref.columns)
    start, end = day_bounds(day)
    kw = dict(model=model, window_key=day, window_start=start, window_end=end,
              report_dir=report_dir, features=features)
    counts = cur["label"].value_counts()
    per_label = len(counts) > 0 and int(counts.min()) >= cfg.min_samples
    if per_label:
        verdict = input_batch(cur, ref, cfg, **kw)
        return replace(verdict, reference=reference)
    pooled = input_batch(cur.assign(label=POOLED), ref.assign(label=POOLED), cfg, **kw)

    def rename(d: dict) -> dict:
        return {k.replace(f"label={POOLED}/", "label=all/"): v for k, v in d.items()}

    details = dict(pooled.details)
    details["pooled"] = (
        f"labels pooled: the batch has {int(counts.min()) if len(counts) else 0} rows in its "
        f"smallest label, below min_samples {cfg.min_samples}"
    )
    details.pop("tested_labels", None)
    details.pop("skipped_labels", None)
    details["p_values"] = rename(details.get("p_values", {}))
    return replace(
        pooled,
        scores=rename(pooled.scores),
        thresholds=pooled.thresholds,
        drifted=[k.replace(f"label={POOLED}/", "label=all/") for k in pooled.drifted],
        reason=pooled.reason.replace(f"label={POOLED}/", "label=all/"),
        reference=reference,
        details=details,
    )


def check_accepted_batch(
    state_root: str | Path,
    day: str,
    batch_path: str | Path,
    dataset_path: str | Path | None,
    *,
    dataset_md5: str = "",
    model: str,
    cfg: DriftConfig | None = None,
) -> Verdict | None:
    """The input check of an accepted batch, recorded in `<state>/drift/verdicts.jsonl`.

    Args:
        state_root: genline's state directory (reports go to `<state>/drift/reports/`).
        day: the batch's day.
        batch_path: the accepted batch (.npz).
        dataset_path: the current training dataset version's .npz; None: nothing to compare
            with yet (the first batches), and no verdict.
        dataset_md5: that version's DVC md5 (the verdict's `reference`).
        model: the model name the verdict is filed under.
        cfg: drift settings (default `DriftConfig.load()`).

    Returns:
        The recorded verdict, or None when there is no training data yet.
    """
    from genline.drift_verdicts import record_verdict
    from genline.npzfiles import load_npz

    if dataset_path is None:
        return None
    drift_dir = Path(state_root) / "drift"
    verdict = check_input_batch(
        load_npz(batch_path), load_npz(dataset_path), day=day, model=model, cfg=cfg,
        report_dir=drift_dir / "reports", reference=f"training_dataset {dataset_md5}".strip(),
    )
    record_verdict(verdict, drift_dir)
    return verdict
