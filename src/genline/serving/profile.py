"""The reference output profile of a published version, on a fixed probe set, and the staleness
baseline computed beside it.

At publish, version N answers a fixed set of requests (every class, `per_class` latents from a
fixed seed) through the real server; the per-sample output features -- the same ones the
prediction log records (mean intensity, ink fraction, the evaluator's predicted class and
confidence, the embedding components) -- and their summary are saved. The serving-health monitor
compares live traffic with this (`reference_frame`).

`PER_CLASS` is sized by the false-alarm calibration: at 32 samples per class (320 in all) a
fixed reference alarmed in 20-25% of unshifted windows, at 320 per class (3,200) in none
(docs/benchmarks.md).

The staleness baseline (`drift.staleness_baseline`) compares the same reference outputs with the
real data the model was trained on (named by the model directory's dataset.json); the staleness
monitor later compares served outputs with the newest accepted data against it.
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
PER_CLASS = 320  # probe samples per class (see the module docstring)
# summarised as distributions; pred_class as shares
FEATURES = (*feat.NUMERIC_OUTPUT_FEATURES, *feat.EMBEDDING_FEATURES)


class BaselineError(RuntimeError):
    """The staleness baseline cannot be computed (the training data is gone or changed)."""


@dataclass(frozen=True)
class ProbeSet:
    num_classes: int
    latent_dim: int
    per_class: int = PER_CLASS
    seed: int = PROBE_SEED

    def __post_init__(self) -> None:
        if self.per_class < 1 or self.num_classes < 1:
            raise ValueError(
                f"a probe set needs per_class >= 1 and num_classes >= 1, got per_class "
                f"{self.per_class}, num_classes {self.num_classes}"
            )

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
    images: np.ndarray,
    labels: np.ndarray,
    evaluator_onnx: str | Path | None,
    embedding_npz: str | Path | None = None,
) -> dict[str, np.ndarray]:
    """The output features of the probe images (`features.output_features` and the embedding).

    Args:
        images: (B, C, H, W) the served version's answers to the probe.
        labels: (B,) the probe's labels.
        evaluator_onnx: the version's evaluator; without it the evaluator features are absent.
        embedding_npz: the version's embedding; without it the `emb_*` features are absent.

    Returns:
        Arrays of length B by feature name.
    """
    images = images.astype(np.float32)
    out = feat.output_features(images, labels, None)  # on the request path: the served float32
    # compaction scores the spooled (float16) images and rounds as below: so does the profile,
    # or the reference would differ from every logged window by construction
    scored = feat.as_spooled(images)
    evaluator = feat.Evaluators().get(evaluator_onnx)
    if evaluator is not None:
        cls, conf = evaluator.score(scored)
        out["pred_class"], out["pred_confidence"] = cls, np.round(conf.astype(np.float64), 5)
    embedding = feat.Embeddings().get(embedding_npz)
    if embedding is not None:
        emb = np.asarray(embedding.transform(scored), np.float64).round(5)  # (B, k)
        for i, name in enumerate(feat.EMBEDDING_FEATURES[: emb.shape[1]]):
            out[name] = emb[:, i]
    return out


def build_profile(
    model: str,
    version: int,
    probe: ProbeSet,
    images: np.ndarray,
    evaluator_onnx: str | Path | None,
    embedding_npz: str | Path | None = None,
) -> dict[str, Any]:
    """The profile record of `version`'s answers to `probe` (summary and every sample)."""
    labels, _ = probe.arrays()
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} probe images for a probe set of {len(labels)} samples")
    feats = features(images, labels, evaluator_onnx, embedding_npz)
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


def reference_frame(profile: dict[str, Any]):
    """A profile's samples as a DataFrame: `label` and the feature columns it recorded.

    This is the reference the serving-health monitor compares a window of traffic with.
    """
    import pandas as pd

    samples = profile.get("samples") or []
    if not samples:
        raise ValueError(
            f"the profile of {profile.get('model')} version {profile.get('version')} holds no "
            "samples"
        )
    return pd.DataFrame(samples)


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


# --- the staleness baseline ---------------------------------------------------------------------


def baseline_path(model: str, version: int, directory: str | Path | None = None) -> Path:
    base = Path(directory) if directory is not None else default_dir()
    return base / model / f"{int(version)}.staleness.json"


def trained_on(dataset_info: dict[str, Any], data: str | Path | None = None):
    """The dataset a model directory's dataset.json names, checked by its fingerprint.

    Args:
        dataset_info: dataset.json (source, fingerprint, image_shape).
        data: where the training data is now, when not at its recorded source (a Kubeflow step
            receives it as an artifact at a path of its own): an .npz file, read whatever its
            name.

    Raises:
        BaselineError: no source is recorded, it cannot be read, or it is no longer the data the
            model was trained on (another fingerprint).
    """
    from genline.data import DataConfig, DataError, load_source

    source, fingerprint = dataset_info.get("source"), dataset_info.get("fingerprint")
    if not fingerprint or not (source or data):
        raise BaselineError(
            f"dataset.json names no source and fingerprint of the training data "
            f"(source={source!r}, fingerprint={fingerprint!r})"
        )
    shape = dataset_info.get("image_shape") or [1, 8, 8]
    cfg = DataConfig(image_size=int(shape[-1]), channels=int(shape[0]))
    if data is not None:
        source = f"npz:{data}"
    try:
        ds = load_source(str(source), cfg)
    except (DataError, OSError) as exc:
        raise BaselineError(f"the training data {source} cannot be read: {exc}") from exc
    if ds.fingerprint != fingerprint:
        raise BaselineError(
            f"the training data {source} changed since training: fingerprint {ds.fingerprint} "
            f"!= {fingerprint} recorded in dataset.json"
        )
    return ds


def held_out(ds):
    """The rows of `ds` that training does not fit (the validation and test splits): a generator
    sits closer to its own training images than to new ones, so real data compared with served
    outputs is always held-out data, at publish and when monitoring."""
    from genline.data import concat, split

    parts = split(ds)
    return concat([parts.val, parts.test], source=f"{ds.source}#held-out")


def build_staleness_baseline(
    profile: dict[str, Any],
    dataset_info: dict[str, Any],
    evaluator_onnx: str | Path,
    embedding_npz: str | Path,
    cfg=None,
    data: str | Path | None = None,
) -> dict[str, Any]:
    """`drift.staleness_baseline` of a version: its reference outputs vs the real features of
    the data it was trained on, with what it was computed from (`data`: see `trained_on`).

    Raises:
        BaselineError: the training data cannot be had (see `trained_on`), or the version has
            no evaluator or embedding to compute real features with.
    """
    from genline.drift import DriftConfig, staleness_baseline
    from genline.embedding import Embedding, EmbeddingError, real_features

    for what, path in (("evaluator", evaluator_onnx), ("embedding", embedding_npz)):
        if not Path(path).is_file():
            raise BaselineError(f"no {what} at {path}: real features cannot be computed")
    ds = held_out(trained_on(dataset_info, data))
    try:
        real = real_features(ds.images, ds.labels, evaluator_onnx, Embedding.load(embedding_npz))
    except EmbeddingError as exc:
        raise BaselineError(str(exc)) from exc
    cfg = cfg if cfg is not None else DriftConfig.load()
    return {
        "model": profile["model"],
        "version": int(profile["version"]),
        "time": clock.now().isoformat(),
        "dataset": {
            "source": str(dataset_info.get("source")),
            "read_from": str(data) if data is not None else str(dataset_info.get("source")),
            "fingerprint": dataset_info.get("fingerprint"),
            "image_shape": list(ds.image_shape),
            "num_rows": len(ds),
        },
        "baseline": staleness_baseline(reference_frame(profile), real, cfg),
    }


def save_staleness_baseline(record: dict[str, Any], directory: str | Path | None = None) -> Path:
    path = baseline_path(record["model"], record["version"], directory)
    atomic_write_json(path, record)
    return path


def record_staleness_baseline(
    profile: dict[str, Any],
    dataset_info: dict[str, Any],
    evaluator_onnx: str | Path,
    embedding_npz: str | Path,
    directory: str | Path | None = None,
    data: str | Path | None = None,
) -> dict[str, str]:
    """Compute and save the staleness baseline of the new version (lineage entries); `data`:
    where the training data is now, when not at its recorded source (see `trained_on`).

    A baseline that cannot be computed (the training data moved, no embedding) does not stop the
    publish -- the version passed its gate and canary -- but is recorded with its reason, and the
    staleness monitor then gives an "error" verdict naming it instead of "no drift".
    """
    try:
        record = build_staleness_baseline(
            profile, dataset_info, evaluator_onnx, embedding_npz, data=data
        )
    except BaselineError as exc:
        return {"staleness_baseline_error": str(exc)}
    return {"staleness_baseline": str(save_staleness_baseline(record, directory))}


def load_staleness_baseline(
    model: str, version: int, directory: str | Path | None = None
) -> dict[str, Any]:
    path = baseline_path(model, version, directory)
    if not path.is_file():
        raise FileNotFoundError(f"no staleness baseline for {model} version {version}: {path}")
    return read_json(path)
