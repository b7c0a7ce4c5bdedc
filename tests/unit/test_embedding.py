"""The drift embedding: PCA of the evaluator's penultimate features, written at export."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest

from genline import contract
from genline.data import split
from genline.embedding import EMBEDDING_FEATURES, Embedding, EmbeddingError, real_features
from genline.serving import features as feat


def test_evaluator_onnx_has_logits_and_features(ci_model_dir):
    m = onnx.load(str(ci_model_dir / contract.EVALUATOR_ONNX))
    assert [o.name for o in m.graph.output] == [contract.EVAL_LOGITS, contract.EVAL_FEATURES]


def test_export_writes_an_embedding_fitted_on_the_training_split(ci_model_dir, digits):
    emb = Embedding.load(ci_model_dir / contract.EMBEDDING)
    assert emb.components.shape == (len(EMBEDDING_FEATURES), 128)
    # orthonormal axes, by decreasing variance
    np.testing.assert_allclose(emb.components @ emb.components.T, np.eye(4), atol=1e-8)
    assert np.all(np.diff(emb.explained_variance) <= 0)
    train = split(digits).train
    z = emb.transform(train.images)
    assert z.shape == (len(train), 4)
    # centred on the training split, with the recorded variance along each axis
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-4 * np.sqrt(emb.explained_variance[0]))
    np.testing.assert_allclose(z.var(axis=0, ddof=1), emb.explained_variance, rtol=1e-5)
    refit = Embedding.fit(ci_model_dir / contract.EVALUATOR_ONNX, train.images)
    np.testing.assert_allclose(refit.components, emb.components, atol=1e-6)


def test_embedding_separates_classes_better_than_pixel_statistics(ci_model_dir, digits):
    emb = Embedding.load(ci_model_dir / contract.EMBEDDING)
    z = emb.transform(digits.images)
    centroids = np.stack([z[digits.labels == k].mean(axis=0) for k in range(10)])
    nearest = np.argmin(((z[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (nearest == digits.labels).mean() > 0.7


def test_load_refuses_an_embedding_of_another_evaluator(ci_model_dir, tmp_path):
    shutil.copy(ci_model_dir / contract.EMBEDDING, tmp_path / contract.EMBEDDING)
    m = onnx.load(str(ci_model_dir / contract.EVALUATOR_ONNX))
    m.doc_string = "changed"
    onnx.save(m, str(tmp_path / contract.EVALUATOR_ONNX))
    with pytest.raises(EmbeddingError, match="fitted with evaluator sha256"):
        Embedding.load(tmp_path / contract.EMBEDDING)
    with pytest.raises(EmbeddingError, match="no embedding file"):
        Embedding.load(tmp_path / "absent.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(EmbeddingError, match="not a genline embedding"):
        Embedding.load(tmp_path / "bad.npz")


def test_real_features_have_the_served_drift_columns(ci_model_dir, digits):
    emb = Embedding.load(ci_model_dir / contract.EMBEDDING)
    df = real_features(digits.images[:50], digits.labels[:50],
                       ci_model_dir / contract.EVALUATOR_ONNX, emb)
    assert list(df.columns) == ["label", *feat.IMAGE_FEATURES, "pred_confidence",
                                *EMBEDDING_FEATURES]
    assert len(df) == 50 and df.notna().all().all()
    np.testing.assert_allclose(df[list(EMBEDDING_FEATURES)].to_numpy(),
                               emb.transform(digits.images[:50]))
    with pytest.raises(EmbeddingError, match="50 images but 49 labels"):
        real_features(digits.images[:50], digits.labels[:49],
                      ci_model_dir / contract.EVALUATOR_ONNX, emb)
