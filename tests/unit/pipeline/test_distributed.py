"""The data-parallel launcher's contract, without training (the training test is integration)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from genline.data import load_builtin
from genline.distributed import (
    DistributedConfig,
    DistributedError,
    choose_backend,
    free_port,
    main,
    train_distributed,
    train_from_env,
)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"world_size": 0}, "world_size"),
        ({"world_size": 1.5}, "world_size"),
        ({"backend": "mpi"}, "backend"),
        ({"threads_per_rank": 0}, "threads_per_rank"),
    ],
)
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DistributedConfig(**kwargs)


def test_backend_is_gloo_on_cpu_and_nccl_is_refused_without_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert choose_backend(DistributedConfig(world_size=2)) == "gloo"
    with pytest.raises(DistributedError, match="nccl"):
        choose_backend(DistributedConfig(world_size=2, backend="nccl"))


def test_free_port_is_bindable():
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_a_failing_rank_surfaces_its_traceback(tmp_path):
    with pytest.raises(DistributedError, match=r"(?s)2 processes \(gloo\).*rank\d.*no-such-model"):
        train_distributed(
            load_builtin(),
            "ci",
            tmp_path / "out",
            DistributedConfig(world_size=2),
            init_from=tmp_path / "no-such-model",
        )


def test_from_env_needs_the_operator_variables(monkeypatch, tmp_path):
    for k in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(DistributedError, match="MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK"):
        train_from_env(None, "ci", tmp_path)
    assert main(["--from-env", "--out", str(tmp_path)]) == 2


def test_genline_never_imports_kfp():
    code = (
        "import sys, genline.cli, genline.distributed; "
        "from genline.cli import cli; "
        "assert not [m for m in sys.modules if m == 'kfp' or m.startswith('kfp.')], 'kfp'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
