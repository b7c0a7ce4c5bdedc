"""The whole `genline train`: load data -> train -> evaluate and gate -> export.

One function that the CLI, the Kubeflow components and tests share.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genline.data import DataConfig, Dataset, load_dataset
from genline.distill import DistillConfig, distill_model_dir
from genline.evaluate import evaluate_model_dir
from genline.export import ExportConfig, export_model_dir
from genline.faults import kill_point
from genline.fsutil import replace_dir
from genline.gate import GateConfig
from genline.lineage import new_run_id
from genline.procutil import pid_alive
from genline.train import TrainConfig, preset, train


@dataclass
class RunResult:
    out_dir: Path
    metrics: dict[str, Any]
    gate_passed: bool
    gate_reasons: list[str]
    export: dict[str, Any] = field(default_factory=dict)
    train_seconds: float = 0.0
    run_id: str = ""


def run_training(
    data: str | Path | Dataset | None = None,
    preset_name: str = "ci",
    out_dir: str | Path = "out/model",
    init_from: str | Path | None = None,
    champion: str | Path | None = None,
    data_cfg: DataConfig = DataConfig(),
    train_cfg: TrainConfig | None = None,
    gate_cfg: GateConfig = GateConfig(),
    export_cfg: ExportConfig = ExportConfig(),
    progress: bool = True,
    distill: DistillConfig | None = None,
) -> RunResult:
    """Train, score, gate and export one generator into `out_dir`.

    Args:
        data: None for the built-in digits, a folder / .npz path, or a loaded Dataset.
        preset_name: a key of genline.train.PRESETS (ignored when `train_cfg` is given).
        out_dir: the model directory to write (see genline.contract for its files).
        init_from: a model directory to fine-tune from.
        champion: the serving model's directory; the challenger may not be worse than it.
        distill: distil a gated teacher into a few-step student (genline.distill) before export;
            export serves it when it passes the gate and keeps the teacher's quality.

    Returns:
        The metrics and the gate verdict. The gate files are written even when it fails.

    Everything is built in a staging directory beside `out_dir` and renamed into place at the
    end, so `out_dir` holds either its previous content or the complete new model directory,
    whatever happens to the run; a run that died leaves a staging directory that the next run
    into the same `out_dir` removes. One run id stamps every file (genline.lineage).
    """
    out = Path(out_dir)
    check_out_dir(out)
    ds = data if isinstance(data, Dataset) else load_dataset(data, data_cfg)
    cfg = train_cfg or preset(preset_name)
    run_id = new_run_id()
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    stage = staging_dir(out, run_id)
    try:
        result = train(ds, cfg, stage, init_from=init_from, progress=progress, run_id=run_id)
        kill_point("train.after_checkpoint")
        metrics, gate = evaluate_model_dir(stage, ds, champion_dir=champion, gate_cfg=gate_cfg)
        if distill is not None:
            distill_model_dir(stage, ds, distill, progress=progress)
        report = export_model_dir(stage, ds, export_cfg)
        kill_point("train.before_commit")
        replace_dir(stage, out)  # the complete directory, or the previous one: never a mix
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return RunResult(out, metrics, gate.passed, gate.reasons, report, result.seconds, run_id)


class OutDirError(ValueError):
    """An --out that genline will not replace (it is not a model directory, or holds the cwd)."""


def check_out_dir(out: Path) -> None:
    """Refuse an `out` whose replacement would destroy something that is not a model directory.

    A finished run replaces `out` whole, so `out` must be absent, empty, or a model directory
    (it has a checkpoint.pt); and it may not be the current directory or one of its parents.

    Raises:
        OutDirError: naming the path and what is in the way.
    """
    from genline import contract

    resolved = out.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise OutDirError(f"--out {out} is the current directory or one of its parents; "
                          "name a model directory, e.g. --out out/model")
    if out.exists() and not out.is_dir():
        raise OutDirError(f"--out {out} exists and is not a directory")
    if out.is_dir() and not (out / contract.CHECKPOINT).is_file():
        found = sorted(p.name for p in out.iterdir())
        if found:
            raise OutDirError(
                f"--out {out} is not empty and not a model directory (no {contract.CHECKPOINT};"
                f" found: {', '.join(found[:6])}{', ...' if len(found) > 6 else ''}): training "
                "replaces the whole directory, so choose an empty or new one")


_STAGING = ".{name}.staging-{pid}-{run}"


def staging_dir(out: Path, run_id: str) -> Path:
    """Where one run builds its model directory: beside `out` (same filesystem, so the final
    rename is atomic), named after the process so a later run can tell it is abandoned."""
    return out.parent / _STAGING.format(name=out.name, pid=os.getpid(), run=run_id[:12])


def remove_stale_staging(out: Path) -> list[Path]:
    """Delete staging and set-aside directories of `out` left by runs that died.

    A directory whose process is still alive (another run into the same --out) is kept.
    """
    removed = []
    for p in out.parent.glob(f".{out.name}.*"):
        kind, _, rest = p.name[len(out.name) + 2:].partition("-")
        if kind not in ("staging", "old") or not p.is_dir():
            continue
        pid = rest.split("-")[0]
        if pid.isdigit() and pid_alive(int(pid)):
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed
