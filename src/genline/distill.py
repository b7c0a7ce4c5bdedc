"""Few-step sampling: distil the guided teacher sampler into a 2-step student.

The teacher (`Generator`, `sample_steps` midpoint steps with classifier-free guidance: 40
velocity evaluations per image for the default 10 steps) defines a deterministic map from noise
z to an image. The student is the same architecture, initialised from the teacher's weights,
with `sample_steps = steps` Euler steps and guidance 0: `steps` evaluations per image, the
guidance folded into its weights.

Method (trajectory distillation, chosen by measurement in docs/benchmarks.md "Few-step
sampling"): a fixed pool of teacher trajectories is integrated once; the student is trained so
that each of its Euler steps lands where the teacher's sampler is at the same time
(t = k / steps), the loss summed over the student's steps and backpropagated through all of them.
This is the straight-path (rectified flow) view of Liu et al. 2022 and the multi-step matching of
progressive distillation (Salimans & Ho 2022) done in one round with guidance folded as in Meng
et al. 2023. One round to 2 steps reached fd_ratio within a few percent of the teacher on the
built-in digits; going to 1 step lost more (see the benchmark).

In the pca space the flow runs on the leading components only; the tail components pass
through both samplers unchanged, so the student is distilled on the flow components.

`distill_model_dir` is the step of the line: it writes `student.pt` and `distill.json` (the
student's metrics and gate next to the teacher's, stamped with the teacher's run) into a model
directory whose teacher passed its gate; export decides whether the student serves.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from genline import contract
from genline.model import Generator


@dataclass(frozen=True)
class DistillConfig:
    """How the student is distilled.

    Attributes:
        steps: student sampler steps (network evaluations per image, guidance folded in).
        iterations: optimizer steps.
        pool: teacher trajectories integrated once and reused (labels balanced, fixed noise).
        batch_size, lr: AdamW with a cosine schedule down to 10% of lr, gradient norm clipped
            to 1; the student is the EMA of the trained weights.
        ema_decay: EMA decay (warmed up as (1 + i) / (10 + i)).
        intermediate_weight: weight of matching the teacher at the student's intermediate
            times (the final image always weighs 1). 0 leaves the intermediate point free:
            paired fd_ratio student/teacher 1.03-1.05 on the ci model instead of 1.06-1.08.
        max_seconds: stop early after this long (safety net on a loaded machine).
        seed: the pool's noise and the batches.
        adoption_tolerance: how much worse (relative) than the teacher a gated metric of the
            student may be for the student to serve (`adoption`).
        hidden: the student's width; None keeps the teacher's and starts from its weights, a
            different width starts from fresh weights (the pca space is the teacher's).
            Measured on the `default` digits teacher (fd_ratio 0.837): its own width, 1,500
            iterations: 0.906; width 256, 1,500: 0.982; width 256, 3,000: 0.937, at a third of
            the per-image cost in process at batch 1 (0.15 vs 0.47 ms, conditioning folded).
    """

    steps: int = 2
    iterations: int = 1500
    pool: int = 16384
    batch_size: int = 256
    lr: float = 1e-3
    ema_decay: float = 0.995
    max_seconds: float = 300.0
    seed: int = 0
    intermediate_weight: float = 0.0
    adoption_tolerance: float = 0.05
    hidden: int | None = None

    def __post_init__(self) -> None:
        if self.hidden is not None and self.hidden < 8:
            raise ValueError(f"hidden must be >= 8 (or None: the teacher's), got {self.hidden}")
        if not 1 <= self.steps <= 4:
            raise ValueError(f"steps must be 1..4, got {self.steps}")
        if self.iterations < 1 or self.pool < self.batch_size:
            raise ValueError(f"need iterations >= 1 and pool >= batch_size, got "
                             f"iterations={self.iterations}, pool={self.pool}, "
                             f"batch_size={self.batch_size}")


# presets, keyed like genline.train.PRESETS (the training preset names the distillation one)
DISTILL_PRESETS: dict[str, DistillConfig] = {
    "ci": DistillConfig(iterations=600, pool=8192, max_seconds=120.0),
    "default": DistillConfig(iterations=1500, pool=16384, max_seconds=300.0),
    "finetune": DistillConfig(iterations=600, pool=8192, max_seconds=120.0),
}


def distill_config(preset: str) -> DistillConfig:
    """The distillation that goes with a training preset (DistillConfig() for unknown ones)."""
    return DISTILL_PRESETS.get(preset, DistillConfig())


def student_config(teacher: Generator, steps: int, hidden: int | None = None):
    """The student's GeneratorConfig: the teacher's architecture (its width unless `hidden`
    says otherwise), `steps` Euler steps, no guidance (it is folded into the weights)."""
    return replace(teacher.cfg, sample_steps=steps, solver="euler", guidance=0.0,
                   hidden=hidden or teacher.cfg.hidden)


@torch.no_grad()
def teacher_marks(teacher: Generator, labels: torch.Tensor, x: torch.Tensor,
                  steps: int, chunk: int = 1024) -> list[torch.Tensor]:
    """Where the teacher's sampler is at t = k / steps, k = 1..steps, from x (B, flow_dim)."""
    n = teacher.cfg.sample_steps
    if n % steps:
        raise ValueError(f"the teacher's {n} sampler steps cannot be split into {steps} student "
                         f"steps evenly; choose steps that divide {n}")
    per = n // steps
    marks: list[list[torch.Tensor]] = [[] for _ in range(steps)]
    for i in range(0, len(x), chunk):
        xb, yb = x[i:i + chunk], labels[i:i + chunk]
        for k in range(steps):
            xb = teacher.sample_flow(yb, xb, start_step=k * per, until_step=(k + 1) * per)
            marks[k].append(xb)
    return [torch.cat(m) for m in marks]


def distill(teacher: Generator, cfg: DistillConfig = DistillConfig(),
            progress: bool = False) -> tuple[Generator, dict[str, Any]]:
    """Distil `teacher` into a `cfg.steps`-step student.

    Returns:
        (student in eval mode, info: seconds of the pool and the training, iterations run, why
        it stopped, final loss).
    """
    from genline.optim import AdamW

    teacher = teacher.eval()
    g = teacher.cfg
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.monotonic()
    labels = torch.arange(cfg.pool) % g.num_classes
    z = torch.randn(cfg.pool, g.flow_dim, generator=gen)
    targets = teacher_marks(teacher, labels, z, cfg.steps)
    pool_s = time.monotonic() - t0

    student = Generator(student_config(teacher, cfg.steps, cfg.hidden))
    if student.cfg.hidden == g.hidden:
        student.load_state_dict(teacher.state_dict())
    else:  # fresh weights; the buffers (the pca space) are the teacher's
        student.load_state_dict({k: v for k, v in teacher.state_dict().items()
                                 if not k.startswith("net.")}, strict=False)
    net = student.net.train()
    ema = copy.deepcopy(student).eval()
    opt = AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.0)
    dt = 1.0 / cfg.steps
    t1 = time.monotonic()
    stopped, loss_value, it = "iterations", float("nan"), 0
    for it in range(1, cfg.iterations + 1):
        lr = cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * it / cfg.iterations)))
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(cfg.pool, (cfg.batch_size,), generator=gen)
        x, y = z[idx], labels[idx]
        loss = torch.zeros(())
        for k in range(cfg.steps):
            x = x + dt * net(x, torch.zeros(len(x)) + k * dt, y)
            weight = 1.0 if k == cfg.steps - 1 else cfg.intermediate_weight
            loss = loss + weight * F.mse_loss(x, targets[k][idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            d = min(cfg.ema_decay, (1 + it) / (10 + it))
            for pe, pm in zip(ema.net.parameters(), net.parameters(), strict=True):
                pe.mul_(d).add_(pm, alpha=1 - d)
        loss_value = float(loss.detach())
        if progress and it % 250 == 0:
            print(f"distill {it}/{cfg.iterations}: loss {loss_value:.5f}", flush=True)
        if time.monotonic() - t1 > cfg.max_seconds:
            stopped = "max_seconds"
            break
    info = {"pool_seconds": round(pool_s, 2), "train_seconds": round(time.monotonic() - t1, 2),
            "iterations_run": it, "stopped_because": stopped, "final_loss": loss_value,
            "teacher_evaluations": g.evaluations, "student_evaluations": ema.cfg.evaluations}
    return ema.eval(), info


def adoption(teacher: dict[str, Any], student: dict[str, Any], student_gate_passed: bool,
             tolerance: float = 0.05) -> tuple[bool, list[str]]:
    """The student serves only if it passes the gate and no gated metric is worse than the
    teacher's by more than `tolerance` (relative; a better metric never blocks it).

    Returns:
        (adopted, reasons it was not).
    """
    from genline.gate import GATED_METRICS

    reasons = [] if student_gate_passed else ["the student fails the quality gate"]
    for key in GATED_METRICS:
        a, b = teacher.get(key), student.get(key)
        if not isinstance(a, int | float) or not isinstance(b, int | float) or not math.isfinite(b):
            reasons.append(f"{key}: missing for the teacher or the student")
            continue
        worse = (b - a) if key == "fd_ratio" else (a - b)  # fd_ratio: lower is better
        if worse > tolerance * abs(a):
            reasons.append(f"{key} is {worse / abs(a):.1%} worse for the student ({a:.4f} -> "
                           f"{b:.4f}), more than {tolerance:.0%}")
    return not reasons, reasons


def distill_model_dir(model_dir: str | Path, dataset, cfg: DistillConfig = DistillConfig(),
                      progress: bool = False) -> dict[str, Any]:
    """Distil the gated teacher in `model_dir` and score the student like the teacher.

    Writes `student.pt` and `distill.json` (config, timings, teacher and student metrics, the
    student's gate, stamped with the teacher's run id and checkpoint sha256). A teacher that
    failed its gate is not distilled: distill.json records why (`skipped`), and nothing else
    is written.

    Returns:
        The distill.json content.
    """
    from genline.data import split
    from genline.evaluate import EvalConfig, compute_metrics, get_evaluator, torch_sample_fn
    from genline.fsutil import atomic_write_json, read_json, sha256_file
    from genline.gate import GATED_METRICS, GateConfig, check_gate
    from genline.lineage import stamp
    from genline.model import load_generator, save_generator

    model_dir = Path(model_dir)
    ckpt_path = model_dir / contract.CHECKPOINT
    teacher, ckpt = load_generator(ckpt_path)
    run_stamp = stamp(ckpt_path, ckpt)
    report: dict[str, Any] = {"config": asdict(cfg), **run_stamp}
    gate_path = model_dir / contract.GATE
    gate = read_json(gate_path) if gate_path.is_file() else {"passed": False}
    if not gate.get("passed"):
        report["skipped"] = "the teacher did not pass its quality gate: nothing to distil"
        atomic_write_json(model_dir / contract.DISTILL_REPORT, report)
        return report
    student, info = distill(teacher, cfg, progress=progress)
    splits = split(dataset)
    evaluator, _ = get_evaluator(dataset, splits)
    t0 = time.monotonic()
    m_student = compute_metrics(torch_sample_fn(student), splits, evaluator,
                                student.cfg.latent_dim, EvalConfig())
    info["evaluate_seconds"] = round(time.monotonic() - t0, 2)
    teacher_metrics = read_json(model_dir / contract.METRICS)
    gate_cfg = GateConfig.from_record(gate)
    # a challenger's student must beat the champion too: the served model is what won
    student_gate = check_gate(m_student, teacher_metrics.get("champion"), gate_cfg)
    adopted, reasons = adoption(teacher_metrics, m_student, student_gate.passed,
                                cfg.adoption_tolerance)
    save_generator(model_dir / contract.STUDENT_CHECKPOINT, student, distill=info,
                   teacher_sha256=run_stamp[contract.CHECKPOINT_SHA256_KEY],
                   **{contract.RUN_ID_KEY: run_stamp[contract.RUN_ID_KEY]})
    report.update({
        "skipped": None,
        "student_sha256": sha256_file(model_dir / contract.STUDENT_CHECKPOINT),
        "student_config": asdict(student.cfg),
        **info,
        "metrics_teacher": {k: teacher_metrics.get(k) for k in GATED_METRICS},
        "metrics_student": {k: m_student[k] for k in GATED_METRICS},
        "student_gate": student_gate.to_json(),
        "adoptable": adopted,
        "reasons": reasons,
    })
    atomic_write_json(model_dir / contract.DISTILL_REPORT, report)
    return report
