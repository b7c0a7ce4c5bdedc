"""Data-parallel training: N processes on this machine, or one rank of a PyTorchJob.

`train_distributed` starts `world_size` processes that join one `torch.distributed` process group
(gloo on CPU; nccl when every rank can have its own GPU and the trainer places work on it) over a
free loopback port, and each calls the core `genline.train.train`, which wraps the model in
DistributedDataParallel and shards batches by rank. Rank 0 writes the model directory. With
`world_size == 1` it trains in the calling process, with no process group.

On Kubernetes the Training Operator starts the processes instead and sets MASTER_ADDR,
MASTER_PORT, WORLD_SIZE and RANK: `python -m genline.distributed --from-env ...` joins that group.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import tempfile
import traceback
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from genline import contract
from genline.data import DataConfig, Dataset, load_dataset
from genline.fsutil import atomic_write_json
from genline.netutil import LOOPBACK, free_port


class DistributedError(RuntimeError):
    """A rank failed, or the process group could not be formed."""


@dataclass(frozen=True)
class DistributedConfig:
    """How to run data-parallel training.

    Attributes:
        world_size: number of processes (ranks); 1 trains in the calling process.
        backend: "gloo", "nccl" or None to choose: nccl when CUDA has a device per rank and the
            trainer can place work on a device, otherwise gloo.
        threads_per_rank: torch intra-op threads per rank (also for a single process); None
            shares the CPUs evenly between ranks (a single process keeps its setting).
        timeout_s: how long collective operations may wait for a slow or dead rank.
    """

    world_size: int = 1
    backend: str | None = None
    threads_per_rank: int | None = None
    timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if not isinstance(self.world_size, int) or self.world_size < 1:
            raise ValueError(f"world_size must be an integer >= 1, got {self.world_size!r}")
        if self.backend not in (None, "gloo", "nccl"):
            raise ValueError(f"backend must be 'gloo', 'nccl' or None, got {self.backend!r}")
        if self.threads_per_rank is not None and self.threads_per_rank < 1:
            raise ValueError(f"threads_per_rank must be >= 1, got {self.threads_per_rank}")


def _trainer_takes_device() -> bool:
    from genline.train import train

    return "device" in inspect.signature(train).parameters


def choose_backend(cfg: DistributedConfig) -> str:
    """The process-group backend for this machine (see DistributedConfig.backend)."""
    import torch

    if cfg.backend == "nccl":
        if not torch.cuda.is_available():
            raise DistributedError("backend 'nccl' needs CUDA, and torch sees no GPU here")
        if not _trainer_takes_device():
            raise DistributedError(
                "backend 'nccl' needs the trainer to place the model and batches on a GPU; "
                "genline.train.train has no `device` parameter yet, use backend 'gloo'"
            )
        return "nccl"
    if cfg.backend == "gloo":
        return "gloo"
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return "nccl" if gpus >= cfg.world_size and _trainer_takes_device() else "gloo"


def _threads(cfg: DistributedConfig) -> int:
    return cfg.threads_per_rank or max(1, (os.cpu_count() or 1) // cfg.world_size)


def _train_kwargs(backend: str, local_rank: int) -> dict[str, Any]:
    if backend == "nccl":
        import torch

        torch.cuda.set_device(local_rank)
        return {"device": f"cuda:{local_rank}"}
    return {}


def _rank_main(
    rank: int,
    world_size: int,
    port: int,
    backend: str,
    threads: int,
    timeout_s: float,
    dataset: Dataset,
    train_cfg: Any,
    out_dir: str,
    init_from: str | None,
    progress: bool,
    error_dir: str,
) -> None:
    """One rank of a local group (the target of torch.multiprocessing)."""
    import torch
    import torch.distributed as dist

    from genline.train import train

    torch.set_num_threads(threads)
    try:
        dist.init_process_group(
            backend,
            init_method=f"tcp://{LOOPBACK}:{port}",
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=timeout_s),
        )
        try:
            train(
                dataset,
                train_cfg,
                out_dir,
                init_from=init_from,
                progress=progress and rank == 0,
                **_train_kwargs(backend, rank),
            )
        finally:
            dist.destroy_process_group()
    except BaseException:
        # The parent reports the first rank's traceback instead of a bare exit code.
        Path(error_dir, f"rank{rank}.txt").write_text(traceback.format_exc())
        raise


def _load(data: str | Path | Dataset | None, data_cfg: DataConfig) -> Dataset:
    return data if isinstance(data, Dataset) else load_dataset(data, data_cfg)


def train_distributed(
    data: str | Path | Dataset | None,
    preset_name: str = "ci",
    out_dir: str | Path = "out/model",
    dist_cfg: DistributedConfig = DistributedConfig(),
    init_from: str | Path | None = None,
    data_cfg: DataConfig = DataConfig(),
    train_cfg: Any = None,
    progress: bool = False,
):
    """Train the generator with `dist_cfg.world_size` data-parallel processes.

    Args:
        data: None for the built-in digits, a folder or .npz path, or a loaded Dataset.
        preset_name: a key of genline.train.PRESETS (ignored when `train_cfg` is given).
        out_dir: the model directory rank 0 writes (checkpoint, loss.png, train.json).
        dist_cfg: processes, backend and threads.
        init_from: a model directory to fine-tune from.
        data_cfg: how to load `data` when it is a path.
        train_cfg: a genline.train.TrainConfig overriding the preset.
        progress: show rank 0's progress bar.

    Returns:
        genline.train.TrainResult of the run (from rank 0's train.json when world_size > 1).

    Raises:
        DistributedError: when a rank fails; the message carries its traceback.
    """
    import json

    from genline.train import TrainResult, preset, train

    cfg = train_cfg or preset(preset_name)
    dataset = _load(data, data_cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / contract.DATASET_INFO, dataset.info())  # as `genline train` does
    init = str(init_from) if init_from is not None else None
    if dist_cfg.world_size == 1:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(dist_cfg.threads_per_rank or threads)
        try:
            return train(dataset, cfg, out, init_from=init, progress=progress)
        finally:
            torch.set_num_threads(threads)

    import torch.multiprocessing as mp

    backend = choose_backend(dist_cfg)
    last_error: str | None = None
    for _attempt in range(3):  # the free port can be taken between probing and binding
        port = free_port()
        with tempfile.TemporaryDirectory(prefix="genline-ddp-") as errors:
            try:
                mp.start_processes(
                    _rank_main,
                    args=(
                        dist_cfg.world_size,
                        port,
                        backend,
                        _threads(dist_cfg),
                        dist_cfg.timeout_s,
                        dataset,
                        cfg,
                        str(out),
                        init,
                        progress,
                        errors,
                    ),
                    nprocs=dist_cfg.world_size,
                    join=True,
                    start_method="spawn",
                )
                last_error = None
                break
            except mp.ProcessRaisedException as exc:
                last_error = str(exc)
            except mp.ProcessExitedException as exc:
                last_error = str(exc)
            reports = sorted(Path(errors).glob("rank*.txt"))
            if reports:
                last_error = "\n".join(f"{p.stem}: {p.read_text()}" for p in reports)
            if "EADDRINUSE" not in last_error and "address already in use" not in last_error:
                break
    if last_error is not None:
        raise DistributedError(
            f"data-parallel training with {dist_cfg.world_size} processes ({backend}) failed:\n"
            f"{last_error}"
        )
    info = json.loads((out / "train.json").read_text())
    return TrainResult(
        out / contract.CHECKPOINT,
        info["iterations"],
        info["seconds"],
        info["stopped_because"],
        info["history"],
        info["world_size"],
    )


def train_from_env(
    data: str | Path | None,
    preset_name: str,
    out_dir: str | Path,
    init_from: str | Path | None = None,
    backend: str | None = None,
    data_cfg: DataConfig = DataConfig(),
):
    """Join a process group launched by someone else (PyTorchJob, torchrun) and train.

    Reads MASTER_ADDR, MASTER_PORT, WORLD_SIZE and RANK (and LOCAL_RANK when set).
    """
    import torch.distributed as dist

    from genline.train import preset, train

    missing = [
        k for k in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK") if not os.environ.get(k)
    ]
    if missing:
        raise DistributedError(
            f"--from-env needs {', '.join(missing)} in the environment (set by the Kubeflow "
            "Training Operator or torchrun)"
        )
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = choose_backend(DistributedConfig(world_size=1, backend=backend))
    dataset = _load(data, data_cfg)
    dist.init_process_group(chosen, init_method="env://")
    try:
        return train(
            dataset,
            preset(preset_name),
            out_dir,
            init_from=str(init_from) if init_from else None,
            progress=int(os.environ["RANK"]) == 0,
            **_train_kwargs(chosen, local_rank),
        )
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    """`python -m genline.distributed`: local N-process training or one rank of a job."""
    p = argparse.ArgumentParser(
        prog="python -m genline.distributed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", default=None, help="folder or .npz; omit for the built-in digits")
    p.add_argument("--preset", default="ci")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--init-from", default=None)
    p.add_argument("--world-size", type=int, default=2, help="local processes (not --from-env)")
    p.add_argument("--backend", choices=["gloo", "nccl"], default=None)
    p.add_argument(
        "--from-env",
        action="store_true",
        help="join the process group described by MASTER_ADDR/PORT, WORLD_SIZE, RANK",
    )
    a = p.parse_args(argv)
    try:
        if a.from_env:
            r = train_from_env(a.data, a.preset, a.out, a.init_from, a.backend)
        else:
            r = train_distributed(
                a.data,
                a.preset,
                a.out,
                DistributedConfig(world_size=a.world_size, backend=a.backend),
                init_from=a.init_from,
                progress=True,
            )
    except (DistributedError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"trained {r.iterations} iterations in {r.seconds:.1f} s on {r.world_size} "
        f"process(es), stopped by {r.stopped_because}: {a.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
