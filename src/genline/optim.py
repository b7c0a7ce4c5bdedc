"""Adam and AdamW, numerically those of `torch.optim`, without importing torch._dynamo.

Constructing any `torch.optim` optimizer imports `torch._dynamo` (its `__init__` is wrapped by
`torch._disable_dynamo`): 4.5 s on this project's 2-core machines, paid again by every process
that trains -- each Kubeflow training and evaluation step, `genline train`, each test subprocess.
genline never compiles, so it uses this plain implementation of the same update rule
(Kingma & Ba 2015; decoupled weight decay, Loshchilov & Hutter 2019). `tests/unit/test_optim.py`
checks it step for step against `torch.optim.Adam` and `torch.optim.AdamW`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


class Adam:
    """Adam with bias correction; `decoupled=True` is AdamW (the decay applied to the weights,
    not added to the gradient). Same defaults as torch.optim; `param_groups[i]["lr"]` may be
    changed between steps (a learning-rate schedule)."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ) -> None:
        params = [p for p in params if p.requires_grad]
        if not params:
            raise ValueError("the optimizer got no parameters that require gradients")
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"invalid Adam settings: lr={lr}, betas={betas}, eps={eps}, "
                             f"weight_decay={weight_decay}")
        self.param_groups = [{"params": params, "lr": lr, "betas": betas, "eps": eps,
                              "weight_decay": weight_decay}]
        self.decoupled = decoupled
        self.state: dict[torch.Tensor, dict[str, torch.Tensor | int]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                st = self.state.setdefault(p, {"step": 0, "m": torch.zeros_like(p),
                                               "v": torch.zeros_like(p)})
                st["step"] += 1
                if wd:
                    if self.decoupled:
                        p.mul_(1 - lr * wd)
                    else:
                        grad = grad.add(p, alpha=wd)
                m, v, n = st["m"], st["v"], st["step"]
                m.lerp_(grad, 1 - b1)
                v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
                denom = (v.sqrt() / math.sqrt(1 - b2**n)).add_(eps)
                p.addcdiv_(m, denom, value=-lr / (1 - b1**n))


def AdamW(params: Iterable[torch.Tensor], lr: float = 1e-3,  # noqa: N802 (torch's name)
          betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
          weight_decay: float = 1e-2) -> Adam:
    """AdamW (torch.optim.AdamW's defaults, weight_decay 0.01)."""
    return Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decoupled=True)
