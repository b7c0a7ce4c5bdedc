from __future__ import annotations

import numpy as np
import pytest

from genline.serving.backend_model import InputError, validate


def ok(n=2):
    return np.zeros((n, 1), np.int64), np.zeros((n, 64), np.float32)


def test_valid_request_is_reshaped():
    labels, z = validate(*ok(3), num_classes=10, latent_dim=64)
    assert labels.shape == (3,) and z.shape == (3, 64)


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda lab, z: (None, z), "missing"),
        (lambda lab, z: (lab.astype(np.int32), z), "INT64"),
        (lambda lab, z: (lab, z.astype(np.float64)), "FP32"),
        (lambda lab, z: (lab, z[:, :10]), r"\[B, 64\]"),
        (lambda lab, z: (lab[:0], z[:0]), "empty"),
        (lambda lab, z: (lab[:1], z), "samples"),
        (lambda lab, z: (lab + 10, z), "label 10 at sample 0 is outside the trained classes 0-9"),
        (lambda lab, z: (lab - 1, z), "outside"),
        (lambda lab, z: (lab, np.where(np.arange(64) == 3, np.nan, z).astype(np.float32)), "NaN"),
        (lambda lab, z: (lab, np.full_like(z, np.inf)), "Inf"),
    ],
)
def test_bad_requests(mutate, match):
    with pytest.raises(InputError, match=match):
        validate(*mutate(*ok()), num_classes=10, latent_dim=64)
