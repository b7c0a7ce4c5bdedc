"""The canary and the probe: what a version must answer before the registry marks it serving."""

from __future__ import annotations

from typing import Any

import numpy as np

from genline.control import ControlClient
from genline.serving.features import PROFILE_PREFIX


class CanaryError(RuntimeError):
    """A version answered wrongly (another version, bad shapes or pixels)."""


def check_images(images: np.ndarray | None, n: int, image_shape: list[int]) -> None:
    """Raise CanaryError unless `images` are n finite, non-constant images in [0, 1]."""
    if images is None or list(images.shape) != [n, *image_shape]:
        got = None if images is None else list(images.shape)
        raise CanaryError(f"canary: image shape {got} != {[n, *image_shape]}")
    if not np.isfinite(images).all():
        raise CanaryError("canary: images contain NaN/Inf")
    if images.min() < -1e-5 or images.max() > 1 + 1e-5:
        raise CanaryError(
            f"canary: pixel values outside [0, 1] ({images.min():.4f}..{images.max():.4f})"
        )
    if float(images.std()) == 0.0:
        raise CanaryError("canary: every pixel of every image is identical")


def canary(server: ControlClient, expect_version: int, meta: dict[str, Any]) -> None:
    """An unpinned request (one sample per class) must be served by `expect_version` with
    valid images.

    Args:
        server: the server the version was loaded into.
        expect_version: the version that must answer.
        meta: the version's serving metadata (num_classes, latent_dim, image_shape).

    Raises:
        CanaryError: naming what was wrong.
    """
    from genline.serving.profile import ProbeSet

    probe = ProbeSet(int(meta["num_classes"]), int(meta["latent_dim"]), per_class=1, seed=7)
    labels, z = probe.arrays()
    version, images = server.infer(labels, z)
    if version != expect_version:
        raise CanaryError(
            f"canary: response came from version {version}, expected {expect_version}"
        )
    check_images(images, len(labels), list(meta["image_shape"]))


def probe_images(
    server: ControlClient, labels: np.ndarray, z: np.ndarray, version: int, chunk: int = 32
) -> np.ndarray:
    """The images `version` (pinned) answers for a probe set, in chunks of `chunk` samples.

    The requests carry `features.PROFILE_PREFIX`, so the prediction log marks them "profile".

    Raises:
        CanaryError: another version answered.
    """
    images = []
    for i in range(0, len(labels), chunk):
        served, img = server.infer(
            labels[i : i + chunk], z[i : i + chunk], version, request_prefix=PROFILE_PREFIX
        )
        if served != version:
            raise CanaryError(f"probe answered by version {served}, expected {version}")
        images.append(img)
    return np.concatenate(images)
