"""The reference output profile of a published version, on a fixed probe set.

At publish, version N answers a fixed set of requests (every class, `per_class` latents from a
fixed seed) through the real server; the per-sample output features -- the same ones the
prediction log records (mean intensity, ink fraction, the evaluator's predicted class and
confidence) -- and their summary are saved. Drift monitoring compares live traffic with this.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genline import clock
from genline.fsutil import atomic_write_json, read_json
from genline.serving import features as feat

PROBE_SEED = 20261128
FEATURES = feat.NUMERIC_OUTPUT_FEATURES  # summarised as distributions; pred_class as shares


@dataclass(frozen=True)
class ProbeSet:
    num_classes: int
    latent_dim: int
    per_class: int = 32
    seed: int = PROBE_SEED

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat(np.arange(self.num_classes), self.per_class).astype(np.int64)
        z = (
            np.random.default_rng(self.seed)
            .standard_normal((len(labels), self.latent_dim))
            .astype(np.float32)
        )
        return labels, z


def default_dir() -> Path:
    from genline.paths import state_dir

    return state_dir() / "serving" / "profiles"


def profile_path(model: str, version: int, directory: str | Path | None = None) -> Path:
    base = Path(directory) if directory is not None else default_dir()
    return base / model / f"{int(version)}.json"


def features(
    images: np.ndarray, labels: np.ndarray, evaluator_onnx: str | Path | None
) -> dict[str, np.ndarray]:
    """The output features of the probe images (`features.output_features`).

    Args:
        images: (B, C, H, W) the served version's answers to the probe.
        labels: (B,) the probe's labels.
        evaluator_onnx: the version's evaluator; without it the evaluator features are absent.

    Returns:
        Arrays of length B by feature name.
    """
    evaluator = feat.Evaluators().get(evaluator_onnx)
    return feat.output_features(images.astype(np.float32), labels, evaluator)


def build_profile(
    model: str, version: int, probe: ProbeSet, images: np.ndarray, evaluator_onnx: str | Path | None
) -> dict[str, Any]:
    labels, _ = probe.arrays()
    feats = features(images, labels, evaluator_onnx)
    summary: dict[str, Any] = {}
    for name in FEATURES:
        if name in feats:
            v = feats[name].astype(float)
            summary[name] = {
                "mean": float(v.mean()),
                "std": float(v.std()),
                "quantiles": {
                    str(q): float(np.quantile(v, q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)
                },
            }
    if "pred_class" in feats:
        counts = np.bincount(feats["pred_class"], minlength=probe.num_classes)
        summary["pred_class_share"] = (counts / counts.sum()).round(5).tolist()
        summary["conditional_accuracy"] = float((feats["pred_class"] == labels).mean())
    samples = [
        {
            k: (int(v[i]) if k in ("label", "pred_class") else round(float(v[i]), 6))
            for k, v in feats.items()
        }
        for i in range(len(labels))
    ]
    return {
        "model": model,
        "version": int(version),
        "time": clock.now().isoformat(),
        "probe": {
            "num_classes": probe.num_classes,
            "latent_dim": probe.latent_dim,
            "per_class": probe.per_class,
            "seed": probe.seed,
        },
        "summary": summary,
        "samples": samples,
    }


def save_profile(profile: dict[str, Any], directory: str | Path | None = None) -> Path:
    path = profile_path(profile["model"], profile["version"], directory)
    atomic_write_json(path, profile)
    return path


def load_profile(model: str, version: int, directory: str | Path | None = None) -> dict[str, Any]:
    path = profile_path(model, version, directory)
    if not path.is_file():
        raise FileNotFoundError(
            f"no reference output profile for {model} version {version}: {path}"
        )
    return read_json(path)


def load_serving_profile(
    repository: str | Path = "triton_repo",
    model: str | None = None,
    directory: str | Path | None = None,
    registry_path: str | Path | None = None,
) -> dict[str, Any]:
    """The reference output profile of the version the registry says is serving.

    This is what drift monitoring compares live traffic (`store.read_window`) against.
    """
    from genline import contract
    from genline.serving.registry import Registry

    model = model or contract.MODEL_NAME
    version = Registry(registry_path).serving(repository, model)
    if version is None:
        raise FileNotFoundError(f"no version of {model} in {repository} has been published")
    return load_profile(model, version, directory)
