"""Windows of served outputs made in process, for calibrating and demonstrating drift monitors.

A model directory's generator (model.onnx) answers (label, z) requests under ONNX Runtime and
its evaluator + embedding score the images, giving rows with the prediction log's drift columns
(`label`, the latent statistics, `DRIFT_FEATURES`). Used by tests/model/test_drift_calibration.py
and benchmarks/drift.py; no server involved (the serving tests cover the real path).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from genline import contract
from genline.embedding import EMBEDDING_FEATURES, Embedding, real_features
from genline.serving import features as feat


def thicker_strokes(images: np.ndarray) -> np.ndarray:
    """A style change of valid digits: grey dilation with a 2x2 window (strokes ~1 px wider)."""
    from scipy.ndimage import grey_dilation

    return grey_dilation(np.asarray(images, np.float32), size=(1, 1, 2, 2))


def perturbed_generator(model_onnx: str | Path, out: str | Path, scale: float = 0.5,
                        seed: int = 0) -> Path:
    """A deliberately broken artifact: every weight matrix of the generator ONNX gets Gaussian
    noise of `scale` times its own standard deviation (a corrupted or mis-converted file)."""
    import onnx
    from onnx import numpy_helper

    rng = np.random.default_rng(seed)
    m = onnx.load(str(model_onnx))
    for init in m.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.ndim == 2 and w.dtype == np.float32 and w.size > 16:
            noisy = w + rng.standard_normal(w.shape).astype(np.float32) * scale * w.std()
            init.CopyFrom(numpy_helper.from_array(noisy.astype(np.float32), init.name))
    onnx.save(m, str(out))
    return Path(out)


class OutputSampler:
    """The served outputs of one generator, scored like the prediction log scores them.

    Args:
        model_dir: a model directory (model.onnx, evaluator.onnx, embedding.npz).
        generator_onnx: serve this generator instead of the directory's (a broken variant).
    """

    def __init__(self, model_dir: str | Path, generator_onnx: str | Path | None = None) -> None:
        from genline.export import ort_session

        self.model_dir = Path(model_dir)
        self.generator = ort_session(generator_onnx or self.model_dir / contract.ONNX_FP32)
        self.evaluator_onnx = self.model_dir / contract.EVALUATOR_ONNX
        self.evaluator = feat.Evaluator(self.evaluator_onnx)
        self.embedding = Embedding.load(self.model_dir / contract.EMBEDDING)
        z_shape = self.generator.get_inputs()[1].shape
        self.latent_dim = int(z_shape[1])

    def images(self, labels: np.ndarray, z: np.ndarray) -> np.ndarray:
        out = [self.generator.run([contract.OUTPUT_IMAGE],
                                  {contract.INPUT_LABEL: labels[i:i + 512],
                                   contract.INPUT_Z: z[i:i + 512]})[0]
               for i in range(0, len(labels), 512)]
        return np.concatenate(out)

    def rows(self, labels: np.ndarray, z: np.ndarray) -> pd.DataFrame:
        """Generate for (labels, z) and return the log's drift columns, one row per sample."""
        labels = np.asarray(labels, np.int64)
        z = np.asarray(z, np.float32)
        imgs = self.images(labels, z)
        s = feat.summarize(labels, z, imgs)
        _, conf = self.evaluator.score(imgs)
        df = pd.DataFrame({k: np.asarray(v) for k, v in s.items()})
        df["pred_confidence"] = np.asarray(conf, np.float64).round(6)
        emb = self.embedding.transform(imgs)
        for i, name in enumerate(EMBEDDING_FEATURES):
            df[name] = emb[:, i]
        return df

    def window(self, n: int, seed: int, z_scale: float = 1.0,
               label_shares: np.ndarray | None = None) -> pd.DataFrame:
        """`n` app requests: labels uniform (or by `label_shares`), z ~ N(0, I) * z_scale."""
        rng = np.random.default_rng(seed)
        k = self.evaluator.session.get_outputs()[0].shape[1] or 10
        labels = rng.choice(k, n, p=label_shares) if label_shares is not None else \
            rng.integers(0, k, n)
        z = rng.standard_normal((n, self.latent_dim)) * z_scale
        return self.rows(labels.astype(np.int64), z.astype(np.float32))

    def profile(self, per_class: int, seed: int) -> pd.DataFrame:
        """A reference profile: `per_class` rows of every label, z from `seed`."""
        k = self.evaluator.session.get_outputs()[0].shape[1] or 10
        labels = np.repeat(np.arange(k), per_class).astype(np.int64)
        z = np.random.default_rng(seed).standard_normal((len(labels), self.latent_dim))
        return self.rows(labels, z.astype(np.float32))

    def real(self, images: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
        """Real images with the same columns (`embedding.real_features`)."""
        return real_features(images, labels, self.evaluator_onnx, self.embedding)
