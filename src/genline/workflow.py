"""The whole `genline train`: load data -> train -> evaluate and gate -> export.

One function that the CLI, the Kubeflow components and tests share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genline import contract
from genline.data import DataConfig, Dataset, load_dataset
from genline.evaluate import GateConfig, evaluate_model_dir
from genline.export import ExportConfig, export_model_dir
from genline.fsutil import atomic_write_json
from genline.train import TrainConfig, preset, train


@dataclass
class RunResult:
    out_dir: Path
    metrics: dict[str, Any]
    gate_passed: bool
    gate_reasons: list[str]
    export: dict[str, Any] = field(default_factory=dict)
    train_seconds: float = 0.0


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
) -> RunResult:
    """Train, score, gate and export one generator into `out_dir`.

    Args:
        data: None for the built-in digits, a folder / .npz path, or a loaded Dataset.
        preset_name: a key of genline.train.PRESETS (ignored when `train_cfg` is given).
        out_dir: the model directory to write (see genline.contract for its files).
        init_from: a model directory to fine-tune from.
        champion: the serving model's directory; the challenger may not be worse than it.

    Returns:
        The metrics and the gate verdict. The gate files are written even when it fails.
    """
    out = Path(out_dir)
    ds = data if isinstance(data, Dataset) else load_dataset(data, data_cfg)
    cfg = train_cfg or preset(preset_name)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / contract.DATASET_INFO, ds.info())
    result = train(ds, cfg, out, init_from=init_from, progress=progress)
    metrics, gate = evaluate_model_dir(out, ds, champion_dir=champion, gate_cfg=gate_cfg)
    report = export_model_dir(out, ds, export_cfg)
    return RunResult(out, metrics, gate.passed, gate.reasons, report, result.seconds)
