"""The one project image every component, Dockerfile, manifest and Helm value refers to.

Tests check that the kustomize overlays, the Dagster Helm values and the Dockerfiles agree with
it, and that its tag is the package version.
"""

from __future__ import annotations

PROJECT_IMAGE = "ghcr.io/genline/genline:0.1.0"  # Dockerfile (CPU)
PROJECT_IMAGE_GPU = f"{PROJECT_IMAGE}-gpu"  # Dockerfile.gpu (CUDA + TensorRT)


def image_for(target: str) -> str:
    """The project image for a training target: "cpu" or "gpu"."""
    if target == "cpu":
        return PROJECT_IMAGE
    if target == "gpu":
        return PROJECT_IMAGE_GPU
    raise ValueError(f"target must be 'cpu' or 'gpu', got {target!r}")
