"""The conditional generator (flow matching with classifier-free guidance) and its checkpoints.

Generator. A velocity network v(x_t, t, y) is trained on straight paths from noise z ~ N(0, I) to
data x (pixels scaled to [-1, 1]): x_t = (1 - t) z + t x, target v = x - z. Labels are dropped to a
"null" class with probability p_uncond so the same network also learns the unconditional field.
Sampling integrates dx/dt = v from t=0 (z) to t=1 with a fixed number of midpoint steps, using the
guided field v_c + w (v_c - v_u). `Generator.forward(label, z)` is that whole sampler: the fixed
loop unrolls into one ONNX graph with inputs (label, z) and output image.

The evaluator CNN that scores it is genline.evaluator_net.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

SOLVERS = ("midpoint", "euler")
SPACES = ("pixel", "pca")


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything needed to rebuild the generator from a checkpoint.

    Attributes:
        num_classes: conditioning classes (the null class is index num_classes).
        channels, image_size: output image shape (C, S, S).
        hidden: width of the velocity MLP.
        depth: number of residual blocks.
        time_dim: width of the sinusoidal time embedding.
        sample_steps: steps of the exported sampler.
        guidance: classifier-free guidance weight w (0 = conditional field only, one network
            evaluation per velocity instead of two).
        solver: "midpoint" (two velocity evaluations per step) or "euler" (one).
        space: where the flow runs: "pixel" (on the C*S*S pixels) or "pca" (on the leading
            `components` whitened principal components of the training images, decoded by a
            fixed linear map; the next `tail` components are noise, so the texture PCA would
            discard is still there). The basis is part of the weights.
        components, tail: pca only, see `space`.
        class_tail: pca only: the tail noise is shaped per class (the mean and standard
            deviation of each tail component over the training images of the requested class,
            fitted with the basis) instead of N(0, 1) for every class. Measured on 32x32 photo
            tiles (a prototype run, docs/generator.md): fd_ratio 2.29 -> 0.85 with it (and a
            400-wide tail).
    """

    num_classes: int = 10
    channels: int = 1
    image_size: int = 8
    hidden: int = 512
    depth: int = 3
    time_dim: int = 64
    sample_steps: int = 10
    guidance: float = 0.5
    solver: str = "midpoint"
    space: str = "pixel"
    components: int = 0
    tail: int = 0
    class_tail: bool = False

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if self.space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, got {self.space!r}")
        if self.space == "pca" and not 1 <= self.components <= self.pixel_dim - self.tail:
            raise ValueError(f"a pca generator needs 1 <= components <= {self.pixel_dim} - tail, "
                             f"got components={self.components}, tail={self.tail}")
        if self.class_tail and self.space != "pca":
            raise ValueError("class_tail is for the pca space")
        if self.sample_steps < 1:
            raise ValueError(f"sample_steps must be >= 1, got {self.sample_steps}")

    @property
    def pixel_dim(self) -> int:
        return self.channels * self.image_size * self.image_size

    @property
    def flow_dim(self) -> int:
        """Dimensions the velocity network works in."""
        return self.pixel_dim if self.space == "pixel" else self.components

    @property
    def latent_dim(self) -> int:
        """Width of the noise input z (the served graph's `z`)."""
        return self.pixel_dim if self.space == "pixel" else self.components + self.tail

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    @property
    def evaluations(self) -> int:
        """Velocity-network evaluations per image (a guided evaluation counts twice: the
        conditional and the unconditional halves)."""
        per_step = 2 if self.solver == "midpoint" else 1
        return self.sample_steps * per_step * (2 if self.guidance else 1)


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) in [0, 1] -> (B, dim) sinusoidal features."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=t.dtype, device=t.device)
                      * (-math.log(1000.0) / max(half - 1, 1)))
    angles = t[:, None] * 1000.0 * freqs[None, :]  # (B, half)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width * 2)
        self.fc2 = nn.Linear(width * 2, width)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = cond.chunk(2, dim=1)  # FiLM from (time, label): (B, W) each
        return h + self.fc2(F.silu(self.fc1(self.norm(h) * (1 + scale) + shift)))


class VelocityNet(nn.Module):
    """v(x_t, t, y): (B, D), (B,), (B,) int64 -> (B, D)."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, w = cfg.flow_dim, cfg.hidden
        self.label_emb = nn.Embedding(cfg.num_classes + 1, w)  # + the null class
        self.time_mlp = nn.Sequential(nn.Linear(cfg.time_dim, w), nn.SiLU(), nn.Linear(w, w))
        self.inp = nn.Linear(d, w)
        self.cond_proj = nn.ModuleList(nn.Linear(w, w * 2) for _ in range(cfg.depth))
        self.blocks = nn.ModuleList(ResBlock(w) for _ in range(cfg.depth))
        self.out_norm = nn.LayerNorm(w)
        self.out = nn.Linear(w, d)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def conditioning(self, t: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """Each block's FiLM input from (time, label): depth x (B, 2W). It does not depend on
        x, so a sampler with fixed times can tabulate it per label (Generator.folded)."""
        c = F.silu(self.time_mlp(time_embedding(t, self.cfg.time_dim)) + self.label_emb(y))
        return [proj(c) for proj in self.cond_proj]

    def forward(self, x: torch.Tensor, t: torch.Tensor | None, y: torch.Tensor,
                cond: list[torch.Tensor] | None = None) -> torch.Tensor:
        h = self.inp(x)  # (B, W)
        for c, block in zip(self.conditioning(t, y) if cond is None else cond, self.blocks,
                            strict=True):
            h = block(h, c)
        return self.out(F.silu(self.out_norm(h)))  # (B, D)


class Generator(nn.Module):
    """forward(label (B,) int64, z (B, latent_dim) float32) -> image (B, C, H, W) in [0, 1]."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = VelocityNet(cfg)
        self._folded: dict[float, list[torch.Tensor]] | None = None  # see folded()
        if cfg.space == "pca":  # set by fit_pca, saved with the weights
            k = cfg.components + cfg.tail
            self.register_buffer("pca_mean", torch.zeros(cfg.pixel_dim))
            self.register_buffer("pca_basis", torch.zeros(k, cfg.pixel_dim))  # orthonormal rows
            self.register_buffer("pca_std", torch.ones(k))  # sqrt of each component's variance
        if cfg.class_tail:  # whitened tail coefficients: per-class mean and std, set by fit_pca
            self.register_buffer("tail_mean", torch.zeros(cfg.num_classes, cfg.tail))
            self.register_buffer("tail_std", torch.ones(cfg.num_classes, cfg.tail))

    @torch.no_grad()
    def fit_pca(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, float]:
        """Fit the pca space to training pixels x (N, pixel_dim) in [-1, 1] (and, with
        class_tail, the per-class tail statistics to their labels (N,)).

        Returns:
            The share of the pixel variance the flow components and the tail explain.
        """
        cfg = self.cfg
        if cfg.space != "pca":
            raise ValueError("fit_pca is for space='pca' generators")
        if cfg.class_tail and (labels is None or len(labels) != len(x)):
            raise ValueError("a class_tail generator needs the label of every training image")
        if cfg.class_tail and len(labels) and not (
                0 <= int(labels.min()) and int(labels.max()) < cfg.num_classes):
            raise ValueError(f"labels must be in 0..{cfg.num_classes - 1}, got "
                             f"{int(labels.min())}..{int(labels.max())}")
        k = cfg.components + cfg.tail
        if k > len(x) - 1:
            raise ValueError(f"{cfg.components} + {cfg.tail} components need more than {k} "
                             f"training images, got {len(x)}")
        mean = x.mean(0)
        _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)
        var = s**2 / (len(x) - 1)
        self.pca_mean.copy_(mean)
        self.pca_basis.copy_(vh[:k])
        self.pca_std.copy_(var[:k].sqrt().clamp_min(1e-6))
        if cfg.class_tail:
            tail = ((x - mean) @ vh[cfg.components:k].T) / self.pca_std[cfg.components:]
            for c in range(cfg.num_classes):  # a class with < 2 images keeps N(0, 1)
                rows = tail[labels == c]
                if len(rows) >= 2:
                    self.tail_mean[c] = rows.mean(0)
                    self.tail_std[c] = rows.std(0)
        total = float(var.sum())
        return {"flow_explained": float(var[: cfg.components].sum()) / total,
                "tail_explained": float(var[cfg.components : k].sum()) / total}

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels (B, pixel_dim) in [-1, 1] -> the flow's space (B, flow_dim)."""
        if self.cfg.space == "pixel":
            return x
        k = self.cfg.components
        return ((x - self.pca_mean) @ self.pca_basis[:k].T) / self.pca_std[:k]

    def decode(self, coeffs: torch.Tensor) -> torch.Tensor:
        """The flow's output joined with the tail, (B, latent_dim) -> pixels (B, pixel_dim)."""
        if self.cfg.space == "pixel":
            return coeffs
        return self.pca_mean + (coeffs * self.pca_std) @ self.pca_basis

    def flow_loss(self, x1: torch.Tensor, y: torch.Tensor, z: torch.Tensor,
                  t: torch.Tensor) -> torch.Tensor:
        """Conditional flow-matching loss for data x1 (B, flow_dim) in the flow's space."""
        xt = (1 - t[:, None]) * z + t[:, None] * x1
        return F.mse_loss(self.net(xt, t, y), x1 - z)

    def _velocity(self, x: torch.Tensor, t: float, label: torch.Tensor) -> torch.Tensor:
        if self._folded is not None:  # a folded copy: the conditioning is a lookup by label
            if t not in self._folded:
                raise KeyError(f"time {t!r} is not one the folded tables were built for "
                               f"({sorted(self._folded)})")
            return self.net(x, None, label, cond=[table[label] for table in self._folded[t]])
        tt = torch.zeros_like(x[:, 0]) + t  # (B,): keeps the batch dimension dynamic in ONNX
        return self.net(x, tt, label)

    def guided_velocity(self, x: torch.Tensor, t: float, label: torch.Tensor) -> torch.Tensor:
        w = self.cfg.guidance
        if w == 0:
            return self._velocity(x, t, label)
        null = torch.zeros_like(label) + self.cfg.num_classes
        v = self._velocity(torch.cat([x, x]), t, torch.cat([label, null]))
        v_c, v_u = v[: x.shape[0]], v[x.shape[0]:]
        return v_c + w * (v_c - v_u)

    def sampler_times(self) -> list[float]:
        """Every time at which the exported sampler evaluates the velocity network."""
        n = self.cfg.sample_steps
        dt = 1.0 / n
        half = [0.5 * dt] if self.cfg.solver == "midpoint" else []
        return [t for i in range(n) for t in (i * dt, *(i * dt + h for h in half))]

    @torch.no_grad()
    def folded(self) -> Generator:
        """A copy for export whose conditioning path (time embedding, time MLP, label embedding,
        each block's FiLM projection) is replaced by tables: for each of the sampler's fixed
        times, each block's FiLM input for every label (null class included). Same outputs up to
        float rounding; the graph loses those layers and their per-image matrix products. The
        tables hold len(sampler_times) x depth x (num_classes + 1) x 2 * hidden floats, so this
        is for few-step samplers (the distilled student: 2 x 3 x 11 x 1024 for the digits)."""
        import copy

        twin = copy.deepcopy(self).eval()
        device = self.net.label_emb.weight.device  # the tables live with the weights
        labels = torch.arange(self.cfg.num_classes + 1, device=device)
        twin._folded = {
            t: [c.detach().clone() for c in self.net.conditioning(
                torch.zeros(len(labels), device=device) + t, labels)]
            for t in self.sampler_times()}
        return twin

    def sample_flow(self, label: torch.Tensor, x: torch.Tensor, start_step: int = 0,
                    until_step: int | None = None) -> torch.Tensor:
        """Integrate the flow from x (B, flow_dim) at step `start_step` (t = start_step / steps)
        up to step `until_step` (the end by default); unrolled into the ONNX graph on export."""
        n = self.cfg.sample_steps
        dt = 1.0 / n
        for i in range(start_step, n if until_step is None else until_step):
            t = i * dt
            v = self.guided_velocity(x, t, label)
            if self.cfg.solver == "midpoint":
                v = self.guided_velocity(x + 0.5 * dt * v, t + 0.5 * dt, label)
            x = x + dt * v
        return x

    def forward(self, label: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.cfg.space == "pixel":
            x = self.sample_flow(label, z)  # (B, D): the flow runs on z itself
        else:
            k = self.cfg.components
            tail = z[:, k:]
            if self.cfg.class_tail:
                tail = self.tail_mean[label] + self.tail_std[label] * tail
            x = self.decode(torch.cat([self.sample_flow(label, z[:, :k]), tail], 1))
        img = ((x + 1.0) * 0.5).clamp(0.0, 1.0)
        return img.unflatten(1, self.cfg.image_shape)  # (B, C, H, W)


# --- checkpoints ------------------------------------------------------------------------------


def save_generator(path: str | Path, model: Generator, **extra: Any) -> None:
    """Store weights with `model_args`, so the checkpoint alone rebuilds the model.

    Extra entries must be plain data (dicts, lists, str, numbers) so that
    `torch.load(..., weights_only=True)` can read the file.
    """
    import io

    from genline.fsutil import atomic_write_bytes

    buf = io.BytesIO()
    torch.save({"model_args": asdict(model.cfg), "state_dict": model.state_dict(), **extra}, buf)
    atomic_write_bytes(path, buf.getvalue())


class CheckpointError(ValueError):
    """A file that is not a genline checkpoint, or one genline refuses to unpickle."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint as plain data only.

    `weights_only=True` makes torch's unpickler refuse every global that is not a tensor or a
    plain container, so a crafted file cannot run code (create files, open sockets) on load.

    Raises:
        CheckpointError: the file is missing, unreadable, refused by the safe unpickler, or
            lacks `model_args` / `state_dict`; the message names the file.
    """
    import pickle

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's own text advises retrying with weights_only=False: never pass that on
        why = next((ln.strip() for ln in str(exc).splitlines()
                    if "Unsupported global" in ln or "Unsupported operand" in ln), "")
        why = why.split(". ")[0][:300] if why else type(exc).__name__
        raise CheckpointError(f"{path}: refused to load: the file is not plain weights and data "
                              f"(the safe unpickler rejected it: {why}); genline never loads "
                              "checkpoints unsafely") from exc
    except Exception as exc:  # truncated zip, not a torch file at all
        raise CheckpointError(f"{path}: cannot be read as a checkpoint ({type(exc).__name__}: "
                              f"{str(exc)[:300]})") from exc
    if not isinstance(ckpt, dict) or "model_args" not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a genline checkpoint (no model_args/state_dict)")
    return ckpt


def load_generator(path: str | Path) -> tuple[Generator, dict[str, Any]]:
    """Rebuild a generator from its checkpoint (weights_only: no code runs on load)."""
    ckpt = read_checkpoint(path)
    try:
        model = Generator(GeneratorConfig(**ckpt["model_args"]))
        model.load_state_dict(ckpt["state_dict"])
    except (TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a generator checkpoint ({str(exc)[:300]})") from exc
    model.eval()
    return model, ckpt
