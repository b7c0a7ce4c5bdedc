"""Training the conditional generator on CPU: seeded, early-stopped, capped in wall time.

Presets are defined in iterations (throughput varies 15-30% between identical runs here), with
wall time only as a cap. If `torch.distributed` is initialised the model is wrapped in
DistributedDataParallel, every rank draws its batches from its own shard of the training split,
the global batch size stays the configured one, and only rank 0 writes files.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from genline import contract
from genline.data import Dataset, split
from genline.fsutil import atomic_write_json
from genline.lineage import new_run_id, stamp
from genline.model import SPACES, Generator, GeneratorConfig, load_generator, save_generator
from genline.optim import AdamW


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters; `PRESETS` names the supported combinations.

    Attributes:
        generator: the architecture (hidden, depth, time_dim, sample_steps, guidance); its data
            fields (num_classes, channels, image_size) are taken from the dataset at train time.
            Every architecture default lives in GeneratorConfig alone.
        iterations: optimizer steps (the main budget).
        max_seconds: wall-time cap; training stops early when it is reached.
        batch_size: global batch size (split across data-parallel ranks).
        lr: peak AdamW learning rate (cosine decay to 10%).
        ema_decay: decay of the weight average used for sampling.
        p_uncond: probability a label is replaced by the null class (classifier-free guidance).
        eval_every: iterations between validation-loss checks.
        patience: checks without improvement before early stopping (0 disables).
        seed: seeds data order, noise and initialisation.
        architecture_from_init: fine-tuning: the architecture is the warm-start checkpoint's
            (the `generator` fields are ignored) and a warm start is required. Otherwise a warm
            start must match `generator` exactly.
        space: where the flow runs (GeneratorConfig.space): "pixel", "pca", or "auto": pixels
            up to AUTO_PIXEL_MAX_DIM values per image (the 8x8 gray digits), principal
            components above (an MLP flow on raw 16x16 pixels reached fd_ratio ~3.9 in 60 s,
            ../shared/FINDINGS.md; on 8x8 RGB photo tiles, 192 values, pixels scored fd_ratio
            1.91 and nn ratio 1.25, pca 1.60 / 0.91: docs/generator.md).
        pca_components, pca_tail: the pca space's flow and tail widths (GeneratorConfig), cut
            to the rank the training images allow. Measured on 32x32 photo tiles (1,500
            iterations, docs/generator.md): with an N(0, 1) tail, fd_ratio 2.29 for 32 + 96,
            2.44 for 16 + 112, 11.0 for 128 + 256; with a per-class tail (pca_class_tail) 32 +
            400 reaches 0.85 (nn ratio 0.86) and 64 + 400 0.29 but conditional accuracy 0.93.
        pca_class_tail: shape the tail noise per class (GeneratorConfig.class_tail).
    """

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    iterations: int = 6000
    max_seconds: float = 300.0
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    p_uncond: float = 0.1
    eval_every: int = 250
    patience: int = 8
    seed: int = 0
    architecture_from_init: bool = False
    space: str = "auto"
    pca_components: int = 32
    pca_tail: int = 400
    pca_class_tail: bool = True

    def __post_init__(self) -> None:
        if self.space not in ("auto", *SPACES):
            raise ValueError(f"space must be 'auto' or one of {SPACES}, got {self.space!r}")

    def generator_config(self, ds: Dataset, train_rows: int | None = None) -> GeneratorConfig:
        """The architecture, sized for `ds` (classes, image shape; the pca space's widths are
        cut to what `train_rows` training images can span)."""
        c, s, _ = ds.image_shape
        sized = replace(self.generator, num_classes=ds.num_classes, channels=c, image_size=s)
        space = self.space if self.space != "auto" else (
            "pixel" if c * s * s <= AUTO_PIXEL_MAX_DIM else "pca")
        if space == "pixel":
            return replace(sized, space="pixel", components=0, tail=0, class_tail=False)
        rank = min(c * s * s, (train_rows if train_rows is not None else len(ds)) - 1)
        k = min(self.pca_components, rank)
        tail = min(self.pca_tail, rank - k)
        return replace(sized, space="pca", components=k, tail=tail,
                       class_tail=self.pca_class_tail and tail > 0)


AUTO_PIXEL_MAX_DIM = 64
# GeneratorConfig fields a preset may override by name (the data decides num_classes, channels
# and image_size; TrainConfig.space and pca_* decide the space and its widths)
ARCHITECTURE_FIELDS = frozenset(f.name for f in fields(GeneratorConfig)) - {
    "num_classes", "channels", "image_size", "space", "components", "tail", "class_tail"}

PRESETS: dict[str, TrainConfig] = {
    # well under a minute on 2 cores, still passes the gate on the built-in digits
    # (the time caps are safety nets for a loaded machine, not the budget: ~35 s / ~3 min here)
    "ci": TrainConfig(generator=GeneratorConfig(hidden=256, depth=2), iterations=1500,
                      max_seconds=180.0, batch_size=128, lr=2e-3, ema_decay=0.995,
                      eval_every=100, patience=0),
    # the best quality within a few minutes on 2 cores that does not copy. Longer training
    # drifts towards the training images: on the built-in digits 2,500 iterations measured
    # fd_ratio 0.844 but nn_distance_ratio 0.712 (4,000 went below the gate's 0.7 copying
    # floor); 1,500: 0.836 / 0.811; 1,000: 0.89 / 0.875. 1,250 keeps nn >= 0.8
    "default": TrainConfig(generator=GeneratorConfig(hidden=512, depth=3), iterations=1250,
                           max_seconds=420.0, batch_size=256, lr=1e-3, ema_decay=0.999,
                           eval_every=250, patience=8),
    # retraining on new data from the serving model (init_from): its architecture, a short
    # cosine schedule at a lower peak rate, so detection -> retrained version serving stays
    # within a few minutes on 2 cores
    "finetune": TrainConfig(iterations=400, max_seconds=150.0, batch_size=256, lr=5e-4,
                            ema_decay=0.99, eval_every=100, patience=0,
                            architecture_from_init=True),
}


def preset(name: str, **overrides: Any) -> TrainConfig:
    """A preset with fields replaced; architecture fields (e.g. `hidden=32`) go to `generator`.

    Raises:
        ValueError: an unknown preset name or field.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    cfg = PRESETS[name]
    arch = {k: overrides.pop(k) for k in list(overrides) if k in ARCHITECTURE_FIELDS}
    unknown = set(overrides) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise ValueError(f"unknown training option(s) {sorted(unknown)}")
    if arch:
        cfg = replace(cfg, generator=replace(cfg.generator, **arch))
    return replace(cfg, **overrides)


@dataclass
class TrainResult:
    checkpoint: Path
    iterations: int
    seconds: float
    stopped_because: str
    history: dict[str, list[float]] = field(default_factory=dict)
    world_size: int = 1


def _to_pixels(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.reshape(len(images), -1)) * 2.0 - 1.0  # (N, D) in [-1, 1]


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@torch.no_grad()
def _val_loss(model: Generator, x: torch.Tensor, y: torch.Tensor, seed: int) -> float:
    g = torch.Generator().manual_seed(seed + 1)  # fixed noise: comparable across checks
    z = torch.randn(x.shape, generator=g)
    t = torch.rand(len(x), generator=g)
    dev = next(model.parameters()).device
    return float(model.flow_loss(x.to(dev), y.to(dev), z.to(dev), t.to(dev)))


def _warm_start(init_from: str | Path, gcfg: GeneratorConfig, cfg: TrainConfig) -> Generator:
    """The checkpoint to continue from, refused when it cannot continue on this data/preset."""
    src = Path(init_from)
    src = src / contract.CHECKPOINT if src.is_dir() else src
    base, _ = load_generator(src)
    # the checkpoint keeps its own space (pixel or pca, its widths, basis and tail statistics:
    # fit_pca is skipped), so only what the data decides must agree
    if base.cfg.image_shape != gcfg.image_shape or base.cfg.num_classes != gcfg.num_classes:
        raise ValueError(
            f"--init-from {src}: its model has {base.cfg.num_classes} classes and image "
            f"shape {base.cfg.image_shape}; the data has {gcfg.num_classes} classes and "
            f"{gcfg.image_shape}")
    if not cfg.architecture_from_init:
        differ = [f"{k} {getattr(base.cfg, k)} (preset: {getattr(gcfg, k)})"
                  for k in sorted(ARCHITECTURE_FIELDS)
                  if getattr(base.cfg, k) != getattr(gcfg, k)]
        if differ:
            raise ValueError(
                f"--init-from {src}: its architecture differs from the preset's: "
                f"{', '.join(differ)}; warm-start with the 'finetune' preset (it takes the "
                "checkpoint's architecture) or a preset of the same architecture")
    return base


def train(dataset: Dataset, cfg: TrainConfig, out_dir: str | Path,
          init_from: str | Path | None = None, progress: bool = True,
          device: str | torch.device = "cpu", run_id: str | None = None) -> TrainResult:
    """Train a generator on the dataset's train split, validating on its val split.

    Args:
        dataset: the full dataset (split here by content hash).
        cfg: the training configuration.
        out_dir: where rank 0 writes the checkpoint and loss.png.
        init_from: a model directory or checkpoint to warm-start from (fine-tuning); its
            architecture must match the data's classes and image shape.
        progress: show a progress bar (only on rank 0 and on a terminal).
        device: where the model trains ("cpu", "cuda:0", ...); with several ranks on GPUs each
            rank passes its own local device. Batches are drawn on the CPU (the same random
            stream on any device) and moved.
        run_id: the id stamped into the checkpoint and dataset.json (a fresh one if None); the
            files evaluation and export write later carry it too (genline.lineage).

    Returns:
        A TrainResult describing the run.
    """
    rank, world = _rank_world()
    out = Path(out_dir)
    splits = split(dataset)
    gcfg = cfg.generator_config(dataset, len(splits.train))
    torch.manual_seed(cfg.seed)
    if init_from is None and cfg.architecture_from_init:
        raise ValueError("this preset fine-tunes a trained model: give init_from (a model "
                         "directory or checkpoint; in the pipeline init_from='serving')")
    model = Generator(gcfg) if init_from is None else _warm_start(init_from, gcfg, cfg)
    gcfg = model.cfg
    pca: dict[str, float] = {}
    if gcfg.space == "pca" and init_from is None:  # a warm start keeps its basis
        pca = model.fit_pca(_to_pixels(splits.train.images),
                            torch.from_numpy(splits.train.labels))
    with torch.no_grad():  # the data in the flow's space, on the CPU (batches move later)
        x_train = model.encode(_to_pixels(splits.train.images))
        x_val = model.encode(
            _to_pixels(splits.val.images if len(splits.val) else splits.train.images[:256]))
    y_train = torch.from_numpy(splits.train.labels)
    device = torch.device(device)
    model.to(device).train()
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)

    velocity: torch.nn.Module = model.net  # (x_t, t, y) -> v
    if world > 1:  # gradients of the velocity net are all-reduced across ranks
        velocity = torch.nn.parallel.DistributedDataParallel(
            model.net, device_ids=[device.index] if device.type == "cuda" else None)

    shard = torch.arange(rank, len(x_train), world)  # this rank's rows
    y_val = torch.from_numpy(splits.val.labels if len(splits.val) else splits.train.labels[:256])

    local_bs = max(1, cfg.batch_size // world)
    opt = AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank)

    history: dict[str, list[float | None]] = {"iteration": [], "train_loss": [], "val_loss": []}
    best_val, best_state, checks_without_gain = math.inf, None, 0
    stopped = "iterations"
    running, seen = 0.0, 0
    start = time.monotonic()
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=cfg.iterations, desc="train", unit="it", disable=None)
    # iteration 0: the starting point (untrained, or the warm-start checkpoint)
    history["iteration"].append(0)
    history["train_loss"].append(None)  # no training batches yet
    history["val_loss"].append(_val_loss(ema, x_val, y_val, cfg.seed))
    it = 0
    for it in range(1, cfg.iterations + 1):
        lr = cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * it / cfg.iterations)))
        for group in opt.param_groups:
            group["lr"] = lr
        idx = shard[torch.randint(len(shard), (local_bs,), generator=gen)]
        x1, y = x_train[idx], y_train[idx].clone()
        y[torch.rand(local_bs, generator=gen) < cfg.p_uncond] = gcfg.num_classes  # null label
        z = torch.randn(x1.shape, generator=gen)
        t = torch.rand(local_bs, generator=gen)
        x1, y, z, t = x1.to(device), y.to(device), z.to(device), t.to(device)
        xt = (1 - t[:, None]) * z + t[:, None] * x1
        loss = torch.nn.functional.mse_loss(velocity(xt, t, y), x1 - z)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            d = min(cfg.ema_decay, (1 + it) / (10 + it))
            for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                pe.mul_(d).add_(pm.detach(), alpha=1 - d)
        running += float(loss.detach())
        seen += 1
        if bar is not None:
            bar.update(1)
        if it % cfg.eval_every == 0 or it == cfg.iterations:
            vl = _val_loss(ema, x_val, y_val, cfg.seed)  # identical on every rank
            history["iteration"].append(it)
            history["train_loss"].append(running / seen)
            history["val_loss"].append(vl)
            running, seen = 0.0, 0
            if bar is not None:
                bar.set_postfix(train=f"{history['train_loss'][-1]:.4f}", val=f"{vl:.4f}")
            if vl < best_val - 1e-5:
                best_val, checks_without_gain = vl, 0
                best_state = copy.deepcopy(ema.state_dict())
            else:
                checks_without_gain += 1
            stop = 0
            if cfg.patience and checks_without_gain >= cfg.patience:
                stop, stopped = 1, "early_stopping"
            elif time.monotonic() - start > cfg.max_seconds:
                stop, stopped = 2, "max_seconds"
            if world > 1:  # ranks must agree: the wall clock differs between processes
                flag = torch.tensor([stop], device=device)
                dist.broadcast(flag, src=0)
                stop = int(flag)
                stopped = {0: stopped, 1: "early_stopping", 2: "max_seconds"}[stop]
            if stop:
                break
    if bar is not None:
        bar.close()
    seconds = time.monotonic() - start
    if best_state is not None and stopped == "early_stopping":
        ema.load_state_dict(best_state)

    ckpt_path = out / contract.CHECKPOINT
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        train_info = {"config": asdict(replace(cfg, generator=gcfg)), "iterations": it,
                      "seconds": round(seconds, 2),
                      "stopped_because": stopped, "world_size": world,
                      "init_from": str(init_from) if init_from else None,
                      "history": history, "pca": pca}
        run_id = run_id or new_run_id()
        save_generator(ckpt_path, ema.to("cpu"), dataset=dataset.info(), train=train_info,
                       metrics={}, **{contract.RUN_ID_KEY: run_id})
        atomic_write_json(out / contract.DATASET_INFO,
                          {**dataset.info(), **stamp(ckpt_path, {contract.RUN_ID_KEY: run_id})})
        plot_loss(history, out / contract.LOSS_PNG)
        (out / "train.json").write_text(json.dumps(train_info, indent=2))
    if world > 1:
        dist.barrier()
    return TrainResult(ckpt_path, it, seconds, stopped, history, world)


def plot_loss(history: dict[str, list[float]], path: str | Path) -> None:
    """Training and validation loss against iteration, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    train_loss = [np.nan if v is None else v for v in history["train_loss"]]
    ax.plot(history["iteration"], train_loss, label="train")
    ax.plot(history["iteration"], history["val_loss"], label="val (EMA weights)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("flow-matching loss")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
