"""Scoring a generator with genline's own evaluator (the gate that judges the scores: genline.gate).

Metrics, at equal sample count N = size of the real test split, with generated labels balanced
over classes:
- fd: Frechet distance between evaluator features of N generated and the N real test images;
- fd_real: the same between N real *train* images and the test images, averaged over
  `real_subsamples` draws (a single draw is ~14% noisy): the floor real data sets;
- fd_ratio = fd / fd_real (~1.2 is the noise floor of an independent real sample; below ~1.1 it
  starts to reward copying, so `nn_distance_ratio` is reported beside it);
- conditional_accuracy: share of generated samples the evaluator assigns to the requested label;
- evaluator_accuracy: the evaluator's accuracy on the real test split;
- diversity_ratio: mean intra-class feature spread of generated over real test images;
- nn_distance_ratio: mean pixel-space nearest-train-neighbour distance of generated samples over
  that of real test images (well below 1 means the generator reproduces training images).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from genline import contract
from genline.data import Dataset, Splits, split
from genline.evaluator_net import Evaluator, load_evaluator
from genline.fsutil import atomic_write_bytes, atomic_write_json
from genline.gate import GATED_METRICS, REQUIRED_METRICS, GateConfig, GateResult, check_gate
from genline.lineage import stamp
from genline.model import load_generator
from genline.optim import Adam
from genline.paths import state_dir

SampleFn = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (labels (B,), z (B,D)) -> (B,C,H,W)


@dataclass(frozen=True)
class EvalConfig:
    seed: int = 1234  # noise of the generated samples: fixed, so metrics are reproducible
    real_subsamples: int = 10
    evaluator_epochs: int = 30
    evaluator_seed: int = 0


# --- the evaluator ------------------------------------------------------------------------------


def train_evaluator(splits: Splits, cfg: EvalConfig = EvalConfig()) -> Evaluator:
    """Train the evaluator CNN on the real training split (seeded, a few seconds on CPU)."""
    torch.manual_seed(cfg.evaluator_seed)
    c, s, _ = splits.train.image_shape
    model = Evaluator(splits.train.num_classes, c, s)
    x = torch.from_numpy(splits.train.images)
    y = torch.from_numpy(splits.train.labels)
    opt = Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(cfg.evaluator_seed)
    model.train()
    for _ in range(cfg.evaluator_epochs):
        for idx in torch.randperm(len(x), generator=gen).split(64):
            xb = x[idx]
            shift = torch.randint(-1, 2, (2,), generator=gen)  # +-1 pixel jitter
            xb = torch.roll(xb, shifts=(int(shift[0]), int(shift[1])), dims=(2, 3))
            loss = F.cross_entropy(model(xb)[0], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model


def get_evaluator(dataset: Dataset, splits: Splits | None = None,
                  cfg: EvalConfig = EvalConfig(), cache_dir: str | Path | None = None
                  ) -> tuple[Evaluator, Path]:
    """The evaluator for this dataset, trained once and cached by dataset fingerprint."""
    import io

    cache = Path(cache_dir) if cache_dir else state_dir() / "evaluators"
    path = cache / f"{dataset.fingerprint}-s{cfg.evaluator_seed}" / contract.EVALUATOR_CHECKPOINT
    if path.exists():
        model, _ = load_evaluator(path)
        return model, path
    model = train_evaluator(splits or split(dataset), cfg)
    buf = io.BytesIO()
    torch.save({"model_args": model.args(), "state_dict": model.state_dict(),
                "dataset_fingerprint": dataset.fingerprint}, buf)
    atomic_write_bytes(path, buf.getvalue())
    return model, path


@torch.no_grad()
def evaluator_outputs(evaluator: Evaluator, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, C, H, W) -> (probabilities (N, K), features (N, F))."""
    logits, feats = [], []
    for chunk in torch.from_numpy(np.ascontiguousarray(images, np.float32)).split(512):
        lg, ft = evaluator(chunk)
        logits.append(lg)
        feats.append(ft)
    return torch.softmax(torch.cat(logits), 1).numpy(), torch.cat(feats).numpy().astype(np.float64)


# --- metric pieces ------------------------------------------------------------------------------


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature sets a (N, F) and b (M, F)."""
    import warnings

    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # ReLU features leave singular covariances; handled below
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        eps = np.eye(len(s1)) * 1e-6
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            covmean = linalg.sqrtm((s1 + eps) @ (s2 + eps))
    covmean = np.real(covmean)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def class_spread(feats: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Mean distance of class-k features to their centroid."""
    f = feats[labels == k]
    if len(f) < 2:
        return float("nan")
    return float(np.linalg.norm(f - f.mean(0), axis=1).mean())


def nn_distance(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Euclidean distance of each query row to its nearest reference row (pixel space)."""
    q = torch.from_numpy(queries.reshape(len(queries), -1).astype(np.float32))
    r = torch.from_numpy(reference.reshape(len(reference), -1).astype(np.float32))
    return torch.cdist(q, r).min(dim=1).values.numpy()


def torch_sample_fn(model: torch.nn.Module) -> SampleFn:
    @torch.no_grad()
    def fn(labels: np.ndarray, z: np.ndarray) -> np.ndarray:
        out = [model(torch.from_numpy(lb), torch.from_numpy(zb)).numpy()
               for lb, zb in zip(np.array_split(labels, max(1, len(labels) // 256)),
                                 np.array_split(z, max(1, len(labels) // 256)), strict=True)]
        return np.concatenate(out)

    return fn


def evaluation_inputs(n: int, num_classes: int, latent_dim: int,
                      seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Balanced labels and fixed standard-normal noise for n generated samples."""
    labels = (np.arange(n) % num_classes).astype(np.int64)
    z = np.random.default_rng(seed).standard_normal((n, latent_dim)).astype(np.float32)
    return labels, z


def compute_metrics(sample_fn: SampleFn, splits: Splits, evaluator: Evaluator,
                    latent_dim: int, cfg: EvalConfig = EvalConfig()) -> dict[str, Any]:
    """All metrics for one generator (given as a sampling function) on one dataset."""
    test, train = splits.test, splits.train
    n, k = len(test), test.num_classes
    labels, z = evaluation_inputs(n, k, latent_dim, cfg.seed)
    generated = sample_fn(labels, z)
    if generated.shape != (n, *test.image_shape):
        raise ValueError(f"generator produced shape {generated.shape}, expected "
                         f"{(n, *test.image_shape)}")
    bad = ~np.isfinite(generated).reshape(n, -1).all(1)
    if bad.any():  # scoring NaN images is meaningless (and scipy's sqrtm crawls on NaN)
        raise ValueError(f"generator produced NaN/Inf pixels in {int(bad.sum())} of {n} images")
    p_gen, f_gen = evaluator_outputs(evaluator, generated)
    p_test, f_test = evaluator_outputs(evaluator, test.images)
    _, f_train = evaluator_outputs(evaluator, train.images)

    fd = frechet_distance(f_gen, f_test)
    rng = np.random.default_rng(cfg.seed + 7)
    m = min(n, len(train))
    fd_real = float(np.mean([frechet_distance(f_train[rng.choice(len(train), m, replace=False)],
                                              f_test) for _ in range(cfg.real_subsamples)]))
    eval_acc = float((p_test.argmax(1) == test.labels).mean())
    cond_hit = p_gen.argmax(1) == labels
    spreads_gen = [class_spread(f_gen, labels, c) for c in range(k)]
    spreads_real = [class_spread(f_test, test.labels, c) for c in range(k)]
    div = [g / r for g, r in zip(spreads_gen, spreads_real, strict=True) if r and r == r]
    nn_gen = nn_distance(generated, train.images).mean()
    nn_real = nn_distance(test.images, train.images).mean()
    per_class = {
        name: {"conditional_accuracy": float(cond_hit[labels == c].mean()),
               "diversity_ratio": spreads_gen[c] / spreads_real[c] if spreads_real[c] else None,
               "mean_intensity": float(generated[labels == c].mean())}
        for c, name in enumerate(test.classes)
    }
    cond_acc = float(cond_hit.mean())
    test_counts = np.bincount(test.labels, minlength=k)
    return {
        "fd": fd,
        "fd_real": fd_real,
        "fd_ratio": fd / fd_real if fd_real > 0 else float("nan"),
        "conditional_accuracy": cond_acc,
        "evaluator_accuracy": eval_acc,
        "conditional_accuracy_ratio": cond_acc / eval_acc if eval_acc > 0 else float("nan"),
        "diversity_ratio": float(np.mean(div)) if div else float("nan"),
        "nn_distance_ratio": float(nn_gen / nn_real) if nn_real > 0 else float("nan"),
        "num_samples": n,
        "num_classes": k,
        "test_images_per_class": {name: int(c) for name, c in
                                  zip(test.classes, test_counts, strict=True)},
        "min_test_images_per_class": int(test_counts.min()),
        "per_class": per_class,
    }


# --- a model directory ----------------------------------------------------------------------------


def evaluate_model_dir(model_dir: str | Path, dataset: Dataset,
                       champion_dir: str | Path | None = None,
                       gate_cfg: GateConfig = GateConfig(),
                       cfg: EvalConfig = EvalConfig()) -> tuple[dict[str, Any], GateResult]:
    """Score the generator in `model_dir` on `dataset`, apply the gate, write metrics and gate.

    The champion (another model directory) is re-scored on the same data with the same
    evaluator, so the comparison is like for like. Writes metrics.json, gate.json and a copy of
    the evaluator checkpoint into `model_dir`; never raises on a bad generator: a generator that
    fails to sample produces a failing gate with the reason.
    """
    model_dir = Path(model_dir)
    splits = split(dataset)
    evaluator, eval_path = get_evaluator(dataset, splits, cfg)
    atomic_write_bytes(model_dir / contract.EVALUATOR_CHECKPOINT, eval_path.read_bytes())
    metrics: dict[str, Any] = {}
    error: str | None = None
    ckpt_path = model_dir / contract.CHECKPOINT
    run_stamp: dict[str, Any] = {contract.RUN_ID_KEY: None, contract.CHECKPOINT_SHA256_KEY: None}
    try:
        model, ckpt = load_generator(ckpt_path)
        run_stamp = stamp(ckpt_path, ckpt)
        if ckpt.get("dataset", {}).get("classes") not in (None, list(dataset.classes)):
            raise ValueError(f"model classes {ckpt['dataset']['classes']} differ from the "
                             f"dataset's {list(dataset.classes)}")
        metrics = compute_metrics(torch_sample_fn(model), splits, evaluator,
                                  model.cfg.latent_dim, cfg)
    except Exception as exc:  # a broken generator fails the gate, with the reason recorded
        error = f"{type(exc).__name__}: {exc}"
    metrics["dataset_fingerprint"] = dataset.fingerprint
    champion_metrics = None
    if champion_dir is not None:
        champion_metrics = _champion_metrics(Path(champion_dir), splits, evaluator, cfg)
        metrics["champion"] = {"dir": str(champion_dir), **{
            k: champion_metrics.get(k) for k in REQUIRED_METRICS + GATED_METRICS}}
    gate = check_gate(metrics if error is None else None, champion_metrics, gate_cfg)
    if error is not None:
        gate.reasons.insert(0, f"generator could not be scored: {error}")
        metrics["error"] = error
    atomic_write_json(model_dir / contract.METRICS, _jsonable({**metrics, **run_stamp}))
    gate_json = {**gate.to_json(), "config": asdict(gate_cfg),
                 "dataset_fingerprint": dataset.fingerprint, **run_stamp}
    atomic_write_json(model_dir / contract.GATE, _jsonable(gate_json))
    return metrics, gate


def _champion_metrics(champion_dir: Path, splits: Splits, evaluator: Evaluator,
                      cfg: EvalConfig) -> dict[str, Any]:
    try:
        model, _ = load_generator(champion_dir / contract.CHECKPOINT)
        return compute_metrics(torch_sample_fn(model), splits, evaluator, model.cfg.latent_dim,
                               cfg)
    except Exception:
        # a missing or unreadable champion checkpoint: compared as missing, so the gate fails
        # closed. Never its recorded metrics.json: those were scored on the data it was trained
        # on, not on this (new) data, so comparing them with the challenger's would be wrong.
        return {}


def _jsonable(obj: Any) -> Any:
    """NaN/Inf -> None so files stay valid JSON; numpy scalars -> Python numbers."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
