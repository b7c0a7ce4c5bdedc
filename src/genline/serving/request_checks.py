"""The checks one generation request must pass before the model runs it.

Run by the python-backend model (genline.serving.backend_model) on each request of a dynamic
batch on its own, so a bad request gets INVALID_ARGUMENT without disturbing its batch-mates.
"""

from __future__ import annotations

import numpy as np

from genline import contract

LABEL, Z = contract.INPUT_LABEL, contract.INPUT_Z


class InputError(ValueError):
    """A request the model cannot serve (maps to INVALID_ARGUMENT)."""


def validate(
    label: np.ndarray | None, z: np.ndarray | None, num_classes: int, latent_dim: int
) -> tuple[np.ndarray, np.ndarray]:
    """Check one request's tensors; returns (labels [B] int64, z [B, latent] float32)."""
    if label is None or z is None:
        missing = [n for n, t in ((LABEL, label), (Z, z)) if t is None]
        raise InputError(f"missing input(s): {', '.join(missing)}")
    labels = np.asarray(label).reshape(-1)
    if labels.dtype != np.int64:
        raise InputError(f"label must be INT64, got {labels.dtype}")
    z = np.asarray(z)
    if z.dtype != np.float32:
        raise InputError(f"z must be FP32, got {z.dtype}")
    if z.ndim != 2 or z.shape[1] != latent_dim:
        raise InputError(f"z must have shape [B, {latent_dim}], got {list(z.shape)}")
    if labels.shape[0] == 0 or z.shape[0] == 0:
        raise InputError("empty batch: send at least one sample")
    if labels.shape[0] != z.shape[0]:
        raise InputError(f"label has {labels.shape[0]} samples but z has {z.shape[0]}")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        i = int(bad[0])
        top = num_classes - 1
        raise InputError(
            f"label {int(labels[i])} at sample {i} is outside the trained classes 0-{top}"
        )
    finite = np.isfinite(z).all(axis=1)
    if not finite.all():
        rows = np.flatnonzero(~finite)[:5].tolist()
        raise InputError(f"z contains NaN or Inf at sample(s) {rows}")
    return labels, z
