"""A small, stable embedding of images for drift monitoring: PCA of the evaluator's penultimate
features, fitted once on the training data.

The evaluator ONNX has two outputs, `contract.EVAL_LOGITS` and `contract.EVAL_FEATURES` (the
128-wide ReLU layer before the head). Drift compares a handful of principal components of those
features (`EMBEDDING_FEATURES`): they summarise what a digit looks like far better than the two
pixel statistics, and they are fixed at export (`embedding.npz` beside `evaluator.onnx`), so
the same image always maps to the same point whatever traffic arrives later.

    emb = Embedding.fit("model/evaluator.onnx", train_images)   # at export
    emb.save("model/embedding.npz")
    Embedding.load("model/embedding.npz").transform(images)     # (B, 4)
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from genline import contract
from genline.fsutil import atomic_write_bytes, sha256_file

EMBEDDING_FEATURES = ("emb_0", "emb_1", "emb_2", "emb_3")
COMPONENTS = len(EMBEDDING_FEATURES)
BATCH = 1024  # images per evaluator call


class EmbeddingError(ValueError):
    """An embedding file that is missing, malformed, or does not belong to the evaluator."""


def _session(evaluator_onnx: str | Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(evaluator_onnx), so, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in sess.get_outputs()]
    if contract.EVAL_FEATURES not in outputs:
        raise EmbeddingError(f"{evaluator_onnx}: the evaluator graph has no "
                             f"{contract.EVAL_FEATURES!r} output (outputs: {outputs}); re-export "
                             "the model with this genline version")
    return sess


def evaluator_run(session, images: np.ndarray, names: list[str]) -> list[np.ndarray]:
    """The evaluator graph's outputs `names` for images (B, C, H, W), BATCH images per call."""
    images = np.ascontiguousarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise EmbeddingError(f"images must be (B, C, H, W), got shape {images.shape}")
    parts = [session.run(names, {contract.EVAL_INPUT: images[i:i + BATCH]})
             for i in range(0, max(len(images), 1), BATCH)]  # no images: one empty call
    return [np.concatenate([p[j] for p in parts]) for j in range(len(names))]


def penultimate(session, images: np.ndarray) -> np.ndarray:
    """The evaluator's penultimate features, (B, C, H, W) -> (B, F) float64."""
    return evaluator_run(session, images, [contract.EVAL_FEATURES])[0].astype(np.float64)


class Embedding:
    """PCA (mean, components) of the evaluator's penultimate features.

    Attributes:
        mean: (F,) feature mean over the fitting images.
        components: (k, F) orthonormal principal axes, by decreasing variance.
        explained_variance: (k,) variance along each axis on the fitting images.
        evaluator_sha256: sha256 of the evaluator ONNX the embedding belongs to.
        evaluator_onnx: where that evaluator is (used by `transform`).
    """

    def __init__(self, mean: np.ndarray, components: np.ndarray, explained_variance: np.ndarray,
                 evaluator_sha256: str, evaluator_onnx: str | Path | None = None) -> None:
        self.mean = np.asarray(mean, np.float64)
        self.components = np.asarray(components, np.float64)
        self.explained_variance = np.asarray(explained_variance, np.float64)
        self.evaluator_sha256 = evaluator_sha256
        self.evaluator_onnx = Path(evaluator_onnx) if evaluator_onnx else None
        self._session = None

    @classmethod
    def fit(cls, evaluator_onnx_path: str | Path, images: np.ndarray,
            components: int = COMPONENTS) -> Embedding:
        """Fit the PCA on `images` (the training split), through the evaluator ONNX.

        Raises:
            EmbeddingError: fewer images than components + 1, or no features output.
        """
        if len(images) <= components:
            raise EmbeddingError(f"fitting a {components}-component embedding needs more than "
                                 f"{components} images, got {len(images)}")
        sess = _session(evaluator_onnx_path)
        feats = penultimate(sess, images)  # (N, F)
        mean = feats.mean(axis=0)
        _, s, vt = np.linalg.svd(feats - mean, full_matrices=False)
        # a deterministic sign: the largest-magnitude loading of each axis is positive
        signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
        vt = vt * signs[:, None]
        var = s**2 / (len(feats) - 1)
        emb = cls(mean, vt[:components], var[:components], sha256_file(evaluator_onnx_path),
                  evaluator_onnx_path)
        emb._session = sess
        return emb

    def save(self, path: str | Path) -> Path:
        """Write the embedding as .npz (atomically)."""
        buf = io.BytesIO()
        np.savez(buf, mean=self.mean, components=self.components,
                 explained_variance=self.explained_variance,
                 evaluator_sha256=np.array(self.evaluator_sha256),
                 feature_names=np.array(EMBEDDING_FEATURES[: len(self.components)]))
        atomic_write_bytes(path, buf.getvalue())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, evaluator_onnx: str | Path | None = None) -> Embedding:
        """Read an embedding; its evaluator defaults to `evaluator.onnx` beside the file.

        Raises:
            EmbeddingError: the file is missing or malformed, or the evaluator's sha256 is not
                the one the embedding was fitted with.
        """
        path = Path(path)
        if not path.is_file():
            raise EmbeddingError(f"no embedding file at {path} (written by export as "
                                 f"{contract.EMBEDDING})")
        try:
            with np.load(path, allow_pickle=False) as z:
                parts: dict[str, Any] = {k: z[k] for k in z.files}
            emb = cls(parts["mean"], parts["components"], parts["explained_variance"],
                      str(parts["evaluator_sha256"]))
        except (KeyError, ValueError, OSError) as exc:
            raise EmbeddingError(f"{path}: not a genline embedding file ({exc})") from exc
        if emb.components.ndim != 2 or emb.components.shape[1] != emb.mean.shape[0]:
            raise EmbeddingError(f"{path}: components {emb.components.shape} do not match the "
                                 f"mean {emb.mean.shape}")
        onnx_path = Path(evaluator_onnx) if evaluator_onnx else path.with_name(
            contract.EVALUATOR_ONNX)
        if onnx_path.is_file():
            digest = sha256_file(onnx_path)
            if digest != emb.evaluator_sha256:
                raise EmbeddingError(f"{path} was fitted with evaluator sha256 "
                                     f"{emb.evaluator_sha256[:12]}, but {onnx_path} is "
                                     f"{digest[:12]}: export them together")
            emb.evaluator_onnx = onnx_path
        return emb

    def project(self, features: np.ndarray) -> np.ndarray:
        """Penultimate features (B, F) -> embedding (B, k)."""
        features = np.asarray(features, np.float64)
        if features.ndim != 2 or features.shape[1] != self.mean.shape[0]:
            raise EmbeddingError(f"features must be (B, {self.mean.shape[0]}), got "
                                 f"{features.shape}")
        return (features - self.mean) @ self.components.T

    def transform(self, images: np.ndarray) -> np.ndarray:
        """Images (B, C, H, W) in [0, 1] -> embedding (B, k) float64.

        Raises:
            EmbeddingError: no evaluator ONNX is known for this embedding.
        """
        if self._session is None:
            if self.evaluator_onnx is None or not self.evaluator_onnx.is_file():
                raise EmbeddingError("this embedding has no evaluator ONNX to run (load it with "
                                     "evaluator_onnx=... or keep evaluator.onnx beside it)")
            self._session = _session(self.evaluator_onnx)
        if len(images) == 0:
            return np.zeros((0, len(self.components)), np.float64)
        return self.project(penultimate(self._session, images))


def real_features(images: np.ndarray, labels: np.ndarray, evaluator_onnx: str | Path,
                  embedding: Embedding):
    """Real images as rows with the served outputs' drift columns.

    Returns:
        A DataFrame with `label`, `IMAGE_FEATURES`, `pred_confidence` and `EMBEDDING_FEATURES`,
        one row per image: what `genline.drift` compares served outputs with.
    """
    import pandas as pd

    from genline.serving import features as feat

    labels = np.asarray(labels, np.int64)
    if len(images) != len(labels):
        raise EmbeddingError(f"{len(images)} images but {len(labels)} labels")
    out = feat.output_features(np.asarray(images, np.float32), labels,
                               feat.Evaluator(evaluator_onnx))
    df = pd.DataFrame({"label": labels,
                       **{k: np.asarray(out[k], np.float64) for k in feat.IMAGE_FEATURES},
                       "pred_confidence": np.asarray(out["pred_confidence"], np.float64)})
    emb = embedding.transform(images)
    for i, name in enumerate(EMBEDDING_FEATURES[: emb.shape[1]]):
        df[name] = emb[:, i]
    return df
