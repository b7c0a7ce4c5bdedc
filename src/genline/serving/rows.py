"""Prediction-log records -> rows: one row per sample, with the evaluator's score and the drift
embedding computed once per batch of records (what compaction writes and live reads return).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from genline.serving import features as feat

if TYPE_CHECKING:
    import pandas as pd

_PER_SAMPLE = (*feat.LATENT_FEATURES, *feat.IMAGE_FEATURES)  # lists in an OK request record


def expand(
    header: dict,
    records: list[dict],
    evaluators: feat.Evaluators,
    embeddings: feat.Embeddings | None = None,
) -> list[dict]:
    """Request records -> one row per sample (failed requests: one row, sample_index -1).

    Every row's `source` comes from its request id (`features.source_of`).

    Args:
        header: the segment's header (model, instance, evaluator and embedding paths, image
            shape).
        records: its request records.
        evaluators: where the header's evaluator is loaded from (scores the OK samples).
        embeddings: where the version's embedding is loaded from (the `emb_*` columns); None
            leaves them null.

    Returns:
        Rows keyed by `features.COLUMNS` names (absent keys are null).
    """
    rows: list[dict] = []
    evaluator = evaluators.get(header.get("evaluator"))
    embedding = embeddings.get(feat.embedding_path(header)) if embeddings is not None else None
    shape = header.get("image_shape")
    ok_imgs: list[np.ndarray] = []
    ok_rows: list[list[dict]] = []
    for rec in records:
        base = {
            "request_id": str(rec.get("request_id", "")),
            "request_batch": int(rec.get("batch", 0) or 0),
            "time": float(rec["time"]),
            "model": header.get("model"),
            "version": int(rec.get("version", header.get("version", -1))),
            "status": rec.get("status", "UNKNOWN"),
            "error": rec.get("error"),
            "seed": rec.get("seed"),
            "latency_ms": rec.get("latency_ms"),
            "instance": header.get("instance"),
            "source": feat.source_of(rec.get("request_id")),
        }
        labels = rec.get("label") or []
        if rec.get("status") != "OK" or not labels:
            rows.append({**base, "sample_index": -1})
            continue
        these = []
        for i in range(len(labels)):
            row = {**base, "sample_index": i, "label": int(labels[i])}
            for key in _PER_SAMPLE:
                vals = rec.get(key)
                row[key] = float(vals[i]) if vals is not None else None
            these.append(row)
        rows.extend(these)
        if (evaluator is not None or embedding is not None) and shape and rec.get("images"):
            ok_imgs.append(feat.decode_images(rec["images"], shape))
            ok_rows.append(these)
    if ok_imgs:
        images = np.concatenate(ok_imgs)  # (N, C, H, W)
        flat = [r for group in ok_rows for r in group]
        # the embedding projects the evaluator's own features: one pass gives both
        same = (evaluator is not None and embedding is not None
                and embedding.evaluator_onnx is not None
                and Path(embedding.evaluator_onnx).resolve() == evaluator.path.resolve())
        features = None
        if evaluator is not None:
            cls, conf, features = evaluator.score_and_features(images, features=same)
            for row, c, p in zip(flat, cls.tolist(), conf.tolist(), strict=True):
                row["pred_class"] = int(c)
                row["pred_confidence"] = round(float(p), 5)
        if embedding is not None:
            emb = np.asarray(embedding.project(features) if features is not None
                             else embedding.transform(images), dtype=np.float64)  # (N, 4)
            for row, values in zip(flat, emb.round(5).tolist(), strict=True):
                row.update(zip(feat.EMBEDDING_FEATURES, values, strict=True))
    return rows


def frame(rows: list[dict]) -> pd.DataFrame:
    """Rows as a DataFrame with exactly `features.COLUMNS`, typed as `features.DTYPES`."""
    import pandas as pd

    df = pd.DataFrame(rows)
    for col in feat.COLUMNS:
        if col not in df.columns:
            df[col] = None
    df = df[feat.COLUMNS]
    floats = [c for c in feat.COLUMNS if feat.DTYPES[c] == "float64"]
    df = df.astype({c: t for c, t in feat.DTYPES.items() if t != "float64" and t != "string"})
    for col in floats:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    for col in (c for c in feat.COLUMNS if feat.DTYPES[c] == "string"):
        df[col] = df[col].astype("string")
    return df
