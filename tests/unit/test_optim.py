"""genline.optim follows torch.optim's Adam and AdamW step for step, without torch._dynamo."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from genline import optim


def _run(make_opt, steps: int = 25, lr_schedule: bool = True):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.SiLU(), torch.nn.Linear(16, 3))
    opt = make_opt(model.parameters())
    gen = torch.Generator().manual_seed(1)
    for i in range(steps):
        if lr_schedule:
            for group in opt.param_groups:
                group["lr"] = 1e-2 * (0.5 + 0.5 * (i % 5) / 4)
        x = torch.randn(32, 6, generator=gen)
        loss = (model(x) - x[:, :3]).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adamw_matches_torch(weight_decay):
    ours = _run(lambda ps: optim.AdamW(ps, lr=1e-2, weight_decay=weight_decay))
    ref = _run(lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=weight_decay))
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_adam_matches_torch(weight_decay):
    ours = _run(lambda ps: optim.Adam(ps, lr=2e-3, weight_decay=weight_decay))
    ref = _run(lambda ps: torch.optim.Adam(ps, lr=2e-3, weight_decay=weight_decay))
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_the_update_really_moves_the_weights_and_bad_settings_are_refused():
    before = _run(lambda ps: optim.AdamW(ps), steps=0)
    after = _run(lambda ps: optim.AdamW(ps), steps=3)
    assert any((a - b).abs().max() > 1e-4 for a, b in zip(before, after, strict=True))
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([torch.zeros(2, requires_grad=True)], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="no parameters"):
        optim.Adam([torch.zeros(2)])


def test_training_a_step_does_not_import_dynamo():
    code = (
        "import sys, torch\n"
        "from genline.optim import AdamW\n"
        "m = torch.nn.Linear(3, 3)\n"
        "opt = AdamW(m.parameters())\n"
        "m(torch.ones(2, 3)).sum().backward()\n"
        "torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)\n"
        "opt.step()\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
