"""The per-sample features of a served generation, and the one column list of the prediction log.

Everything that describes a generated sample lives here once: the request-path summaries the
backend computes (latent statistics, mean intensity, ink fraction), the evaluator's score
(predicted class and confidence, computed later, off the request path), the image encoding used
in the spool, and the log's column list and dtypes. The prediction-log store, the reference
output profile, the CLI and drift monitoring select from these names instead of spelling their
own lists.

Imported inside Triton's python-backend stub: numpy only at import time (onnxruntime is loaded
when an evaluator is first used).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np

from genline import contract

# --- the features -------------------------------------------------------------------------------
LATENT_FEATURES = ("z_mean", "z_std", "z_norm")  # of the request's latent rows
IMAGE_FEATURES = ("mean_intensity", "ink_fraction")  # of the generated images, on the request path
EVALUATOR_FEATURES = ("pred_class", "pred_confidence")  # the evaluator's score, at compaction
OUTPUT_FEATURES = IMAGE_FEATURES + EVALUATOR_FEATURES  # what drift compares with the profile
# The output features summarised as distributions (pred_class is summarised as class shares).
NUMERIC_OUTPUT_FEATURES = tuple(f for f in OUTPUT_FEATURES if f != "pred_class")
# Components of the evaluator's penultimate features under the PCA fitted once on the training
# data (`genline.embedding`, `embedding.npz` in the model directory), at compaction.
EMBEDDING_FEATURES = ("emb_0", "emb_1", "emb_2", "emb_3")
# What the drift monitors compare, per label.
DRIFT_FEATURES = (*IMAGE_FEATURES, "pred_confidence", *EMBEDDING_FEATURES)
INK_THRESHOLD = 0.5  # a pixel above this counts as ink

# --- where a request came from, told by its request-id prefix -------------------------------
CANARY_PREFIX = "genline-canary-"  # publish's and rollback's canary (genline.control)
PROFILE_PREFIX = "genline-profile-"  # the reference-profile probe at publish
SOURCES = ("app", "canary", "profile")  # drift reads only "app"

# --- the prediction log: one row per (request_id, sample_index) ---------------------------------
COLUMNS: list[str] = [
    "request_id",
    "sample_index",  # -1 for a failed request (one row, no samples)
    "request_batch",
    "time",  # epoch seconds when the batch began
    "model",
    "version",
    "status",  # OK, INVALID_ARGUMENT, CANCELLED, DEADLINE_EXCEEDED, INTERNAL
    "error",
    "label",
    "seed",
    *LATENT_FEATURES,
    *OUTPUT_FEATURES,
    *EMBEDDING_FEATURES,
    "latency_ms",
    "instance",
    "source",  # app, canary or profile (SOURCES), from the request-id prefix
]
# pandas dtypes of the log's columns (nullable where a failed request has no value).
DTYPES: dict[str, str] = {
    "request_id": "string",
    "sample_index": "int64",
    "request_batch": "int64",
    "time": "float64",
    "model": "string",
    "version": "int64",
    "status": "string",
    "error": "string",
    "label": "Int64",
    "seed": "Int64",
    **{name: "float64" for name in LATENT_FEATURES},
    **{name: "float64" for name in IMAGE_FEATURES},
    "pred_class": "Int64",
    "pred_confidence": "float64",
    **{name: "float64" for name in EMBEDDING_FEATURES},
    "latency_ms": "float64",
    "instance": "string",
    "source": "string",
}


def source_of(request_id: str | None) -> str:
    """ "canary", "profile" or "app": who sent a request, by its request-id prefix.

    Args:
        request_id: the request's id as logged (None or empty: an app that set none).
    """
    rid = request_id or ""
    if rid.startswith(CANARY_PREFIX):
        return "canary"
    if rid.startswith(PROFILE_PREFIX):
        return "profile"
    return "app"


def select(*names: str) -> list[str]:
    """Log columns by name, checked against `COLUMNS`.

    Args:
        names: column names, in the order wanted.

    Returns:
        The names as a list.

    Raises:
        KeyError: a name that is not a prediction-log column.
    """
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        raise KeyError(f"not prediction-log columns: {unknown} (known: {COLUMNS})")
    return list(names)


# --- the spool's image encoding -------------------------------------------------------------
def encode_images(images: np.ndarray) -> str:
    """Images for the spool: float16 bytes, base64 (compact; plenty for features).

    Args:
        images: (B, C, H, W) float32.

    Returns:
        ASCII text.
    """
    return base64.b64encode(np.ascontiguousarray(images, dtype=np.float16).tobytes()).decode()


def as_spooled(images: np.ndarray) -> np.ndarray:
    """The images as compaction sees them (the spool's float16 round trip): what the evaluator
    and the embedding score, so a reference profile is scored exactly like logged traffic."""
    return np.ascontiguousarray(images, dtype=np.float16).astype(np.float32)


def decode_images(text: str, shape: list[int]) -> np.ndarray:
    """The inverse of `encode_images`.

    Args:
        text: what `encode_images` returned.
        shape: one image's shape (C, H, W).

    Returns:
        (B, C, H, W) float32.
    """
    raw = np.frombuffer(base64.b64decode(text), dtype=np.float16)
    return raw.reshape([-1, *shape]).astype(np.float32)


# --- request-path summaries -----------------------------------------------------------------
def summarize(labels: np.ndarray, z: np.ndarray, images: np.ndarray) -> dict[str, list]:
    """Per-sample summaries computed on the request path (vectorised, microseconds).

    Args:
        labels: (B,) class indices.
        z: (B, latent_dim) latent rows.
        images: (B, C, H, W) generated images.

    Returns:
        `label`, the `LATENT_FEATURES` and the `IMAGE_FEATURES`, one list entry per sample.
    """
    flat = images.reshape(len(images), -1)  # (B, C*H*W)
    return {
        "label": labels.astype(np.int64).tolist(),
        "z_mean": z.mean(axis=1).round(5).tolist(),
        "z_std": z.std(axis=1).round(5).tolist(),
        "z_norm": np.linalg.norm(z, axis=1).round(4).tolist(),
        "mean_intensity": flat.mean(axis=1).round(5).tolist(),
        "ink_fraction": (flat > INK_THRESHOLD).mean(axis=1).round(5).tolist(),
    }


# --- the evaluator's score ------------------------------------------------------------------
class Evaluator:
    """The evaluator ONNX under ONNX Runtime (one CPU thread, no spinning), as a scorer.

    Args:
        path: the evaluator ONNX file (`contract.EVALUATOR_ONNX` of a model directory).
    """

    def __init__(self, path: str | Path):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def score(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted class and its softmax probability for each image.

        Args:
            images: (B, C, H, W) float32 in [0, 1].

        Returns:
            (pred_class (B,) int64, pred_confidence (B,) float32).
        """

        cls, conf, _ = self.score_and_features(images, features=False)
        return cls, conf

    def score_and_features(self, images: np.ndarray, features: bool = True
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """`score` and, from the same pass, the penultimate features (B, F) float64 (None
        when `features` is False): what an `Embedding` of this evaluator projects."""
        from genline import contract
        from genline.embedding import evaluator_run

        names = [contract.EVAL_LOGITS] + ([contract.EVAL_FEATURES] if features else [])
        out = evaluator_run(self.session, images, names)
        logits = out[0] - out[0].max(axis=1, keepdims=True)  # (B, num_classes), stable softmax
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        return probs.argmax(axis=1), probs.max(axis=1), (
            out[1].astype(np.float64) if features else None)


class Evaluators:
    """Evaluators by path, loaded once each (None for a path that is unset or gone)."""

    def __init__(self) -> None:
        self._loaded: dict[str, Evaluator | None] = {}

    def get(self, path: str | Path | None) -> Evaluator | None:
        """The evaluator at `path`, or None when `path` is empty or not a file."""
        if not path:
            return None
        key = str(path)
        if key not in self._loaded:
            self._loaded[key] = Evaluator(key) if Path(key).is_file() else None
        return self._loaded[key]


EMBEDDING_FILE = contract.EMBEDDING  # in a model directory and a served version's directory


def embedding_path(header: dict) -> str | None:
    """The embedding a spool segment's version uses: the header's `embedding`, else the
    `EMBEDDING_FILE` beside its evaluator (segments written before the header named it)."""
    if header.get("embedding"):
        return str(header["embedding"])
    if header.get("evaluator"):
        return str(Path(header["evaluator"]).with_name(EMBEDDING_FILE))
    return None


class Embeddings:
    """`genline.embedding.Embedding`s by path, loaded once each (None for a path that is unset
    or gone: a version published without one logs null `emb_*` columns)."""

    def __init__(self) -> None:
        self._loaded: dict[str, Any] = {}

    def get(self, path: str | Path | None):
        """The embedding at `path`, or None when `path` is empty or not a file."""
        if not path:
            return None
        key = str(path)
        if key not in self._loaded:
            if Path(key).is_file():
                from genline.embedding import Embedding

                self._loaded[key] = Embedding.load(key)
            else:
                self._loaded[key] = None
        return self._loaded[key]


def output_features(
    images: np.ndarray, labels: np.ndarray, evaluator: Evaluator | None
) -> dict[str, np.ndarray]:
    """`label` and the `OUTPUT_FEATURES` of a batch of generated images, as arrays.

    Args:
        images: (B, C, H, W) float32.
        labels: (B,) the labels they were generated for.
        evaluator: scores the images; without one the `EVALUATOR_FEATURES` are left out.

    Returns:
        Arrays of length B by feature name.
    """
    summary = summarize(labels, np.zeros((len(labels), 1), np.float32), images)
    out: dict[str, Any] = {"label": labels}
    for name in IMAGE_FEATURES:
        out[name] = np.asarray(summary[name])
    if evaluator is not None:
        out["pred_class"], out["pred_confidence"] = evaluator.score(images)
    return out
