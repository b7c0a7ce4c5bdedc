"""`genline train | evaluate | export | sample`: adapters over genline.workflow and friends."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

DATA_HELP = "Built-in digits if omitted; else a folder with one subfolder per class, or an .npz."


def _data_cfg(image_size: int | None, channels: int | None):
    from genline.data import DataConfig

    return DataConfig(image_size=image_size, channels=channels)


def _load(data: str | None, image_size: int | None, channels: int | None):
    from genline.data import DataError, load_dataset

    try:
        return load_dataset(data, _data_cfg(image_size, channels))
    except DataError as exc:
        raise click.UsageError(f"bad data: {exc}") from exc


class ModelDirError(click.ClickException):
    """A --model / --champion / --init-from path that is not a usable model directory (exit 2)."""

    exit_code = 2


def open_model_dir(model_dir: str | Path, option: str = "--model"):
    """Check that `model_dir` is a model directory whose checkpoint loads safely.

    Returns:
        (path, generator, checkpoint dict). Raises ModelDirError naming what is missing or wrong;
        nothing is written.
    """
    from genline import contract
    from genline.model import CheckpointError, load_generator

    d = Path(model_dir)
    ckpt = d / contract.CHECKPOINT
    if not ckpt.is_file():
        found = sorted(p.name for p in d.iterdir())[:6] if d.is_dir() else []
        raise ModelDirError(
            f"{option} {d} is not a model directory: {contract.CHECKPOINT} is missing"
            f" (found: {', '.join(found) or 'nothing'}); make one with `genline train --out DIR`")
    try:
        model, meta = load_generator(ckpt)
    except CheckpointError as exc:
        raise ModelDirError(f"{option}: {exc}") from exc
    return d, model, meta


def _fmt(v: Any) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) >= 10:
        return str(int(v))  # counts that travelled through JSON metadata as floats
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def print_metrics(metrics: dict[str, Any], gate: dict[str, Any] | None = None) -> None:
    keys = ("fd", "fd_real", "fd_ratio", "conditional_accuracy", "evaluator_accuracy",
            "conditional_accuracy_ratio", "diversity_ratio", "nn_distance_ratio", "num_samples",
            "min_test_images_per_class")
    width = max(len(k) for k in keys)
    click.echo("metric".ljust(width) + "  value")
    for k in keys:
        if k in metrics:
            click.echo(f"{k.ljust(width)}  {_fmt(metrics[k])}")
    if gate is not None:
        verdict = "PASSED" if gate["passed"] else "FAILED"
        click.echo(f"gate: {verdict}")
        for r in gate.get("reasons", []):
            click.echo(f"  - {r}")


def print_student(student: dict[str, Any] | None) -> None:
    """Teacher and distilled student side by side, with the decision."""
    if not student:
        return
    teacher_m, student_m = student.get("metrics_teacher"), student.get("metrics_student")
    if teacher_m and student_m:
        width = max(len(k) for k in teacher_m)
        click.echo(f"{'metric'.ljust(width)}  teacher   student")
        for k in teacher_m:
            click.echo(f"{k.ljust(width)}  {_fmt(teacher_m[k]):8}  {_fmt(student_m.get(k))}")
    for b in (1, 256):
        if f"speedup_batch{b}" in student:
            click.echo(f"ms/image at batch {b}: teacher "
                       f"{student[f'teacher_batch{b}_ms_per_image']:.3f}, student "
                       f"{student[f'student_batch{b}_ms_per_image']:.3f} "
                       f"({student[f'speedup_batch{b}']:.1f}x)")
    verdict = "adopted: the student serves" if student.get("adopted") else (
        "not adopted: the teacher serves")
    click.echo(f"student: {verdict}" + "".join(f"\n  - {r}" for r in student.get("reasons", [])))
    int8 = student.get("int8")
    if int8 and "speedup_batch1" in int8:
        click.echo(f"student INT8: {int8['speedup_batch1']:.1f}x at batch 1, "
                   f"{int8['speedup_batch64']:.1f}x at batch 64; "
                   + ("adopted: its INT8 graph serves" if int8.get("adopted") else
                      "not adopted: " + "; ".join(int8.get("reasons", []))))
    elif int8:
        click.echo("student INT8: not adopted: " + "; ".join(int8.get("reasons", [])))


def _image_opts() -> list:
    return [
        click.option("--image-size", type=int, default=None,
                     help="Resize images to SxS. Default: the images' own size (the most "
                          "common one when they differ; at most 64)."),
        click.option("--channels", default=None, type=click.Choice(["1", "3"]),
                     callback=lambda c, p, v: None if v is None else int(v),
                     help="1 (gray) or 3 (RGB). Default: RGB when any image is in colour."),
    ]


def with_image_opts(f):
    for opt in reversed(_image_opts()):
        f = opt(f)
    return f


@click.command("train")
@click.option("--data", default=None, help=DATA_HELP)
@click.option("--preset", "preset_name", default="default", show_default=True,
              type=click.Choice(["ci", "default"]))
@click.option("--init-from", type=click.Path(exists=True, file_okay=False), default=None,
              help="Model directory to fine-tune from.")
@click.option("--champion", type=click.Path(exists=True, file_okay=False), default=None,
              help="Serving model directory the new model must not be worse than.")
@click.option("--max-seconds", type=float, default=None, help="Override the preset's time cap.")
@click.option("--seed", type=int, default=None)
@click.option("--no-int8", is_flag=True, help="Skip measuring the INT8 variant.")
@click.option("--distill/--no-distill", default=True, show_default=True,
              help="Distil a gated model into a 2-step student; it serves when it passes the "
                   "gate and no gated metric is more than 5% worse than the teacher's.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@with_image_opts
def train_cmd(data, preset_name, init_from, champion, max_seconds, seed, no_int8, distill,
              out_dir, image_size, channels):
    """Train a generator, score it, gate it and export it into OUT.

    Exits 1 when the quality gate fails (after writing metrics.json and gate.json).
    """
    import signal

    from genline import contract
    from genline.distill import distill_config
    from genline.export import ExportConfig
    from genline.fsutil import read_json
    from genline.train import preset
    from genline.workflow import OutDirError, check_out_dir, run_training

    try:
        check_out_dir(Path(out_dir))
    except OutDirError as exc:
        raise click.UsageError(str(exc)) from exc
    for option, path in (("--init-from", init_from), ("--champion", champion)):
        if path is not None:
            open_model_dir(path, option)
    # SIGTERM (what Kubernetes, Dagster and `kill` send) unwinds like Ctrl-C, so the staging
    # directory is removed and --out stays as it was
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    ds = _load(data, image_size, channels)
    overrides = {k: v for k, v in (("max_seconds", max_seconds), ("seed", seed)) if v is not None}
    click.echo(f"data: {ds.source}  rows={len(ds)}  classes={ds.num_classes}  "
               f"shape={ds.image_shape}  fingerprint={ds.fingerprint[:16]}")
    for note in ds.notes:
        click.echo(f"data: {note}")
    try:
        result = run_training(ds, preset_name, out_dir, init_from=init_from, champion=champion,
                              train_cfg=preset(preset_name, **overrides),
                              export_cfg=ExportConfig(try_int8=not no_int8),
                              distill=distill_config(preset_name) if distill else None)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    out = Path(out_dir)
    print_metrics(result.metrics, read_json(out / contract.GATE))
    int8 = result.export.get("int8", {})
    if no_int8:
        click.echo("int8: skipped (--no-int8)")
    else:
        click.echo(f"int8: {'adopted' if int8.get('adopted') else 'not adopted'}"
                   + "".join(f"\n  - {r}" for r in int8.get("reasons", [])))
    print_student(result.export.get("student"))
    click.echo(f"serving variant: {result.export.get('serving_variant')}")
    click.echo(f"wrote {out}/: " + ", ".join(sorted(p.name for p in out.iterdir())))
    if not result.gate_passed:
        raise SystemExit(1)


@click.command("evaluate")
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--champion", type=click.Path(exists=True, file_okay=False), default=None)
@click.option("--data", default=None, help=DATA_HELP)
@with_image_opts
def evaluate_cmd(model_dir, champion, data, image_size, channels):
    """Score a model directory and apply the quality gate (exit 1 if it fails)."""
    from genline.evaluate import evaluate_model_dir
    from genline.model import CheckpointError

    _, _, meta = open_model_dir(model_dir)
    if champion is not None:
        open_model_dir(champion, "--champion")
    ds = _load(data, image_size, channels)
    trained_on = (meta.get("dataset") or {}).get("classes")
    if trained_on is not None and list(trained_on) != list(ds.classes):
        raise ModelDirError(
            f"--model {model_dir} was trained on classes {_short(trained_on)}, the data has "
            f"{_short(ds.classes)}: score it on data with the same classes (nothing written)")
    try:
        metrics, gate = evaluate_model_dir(model_dir, ds, champion_dir=champion)
    except CheckpointError as exc:  # e.g. a tampered evaluator in the cache
        raise ModelDirError(str(exc)) from exc
    print_metrics(metrics, gate.to_json())
    if not gate.passed:
        raise SystemExit(1)


@click.command("export")
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--data", default=None, help=DATA_HELP + " Used to score the INT8 variant.")
@click.option("--no-int8", is_flag=True)
@with_image_opts
def export_cmd(model_dir, data, no_int8, image_size, channels):
    """Export a model directory's checkpoint to ONNX (parity-checked) and decide on INT8."""
    from genline.export import ExportConfig, ExportError, export_model_dir

    open_model_dir(model_dir)
    ds = None if no_int8 else _load(data, image_size, channels)
    try:
        report = export_model_dir(model_dir, ds, ExportConfig(try_int8=not no_int8))
    except ExportError as exc:
        raise click.ClickException(str(exc)) from exc
    shown = {k: report[k] for k in ("parity", "int8", "serving_variant", "files")}
    if (report.get("student") or {}).get("int8"):  # the INT8 trial of an adopted student
        shown["student_int8"] = report["student"]["int8"]
    click.echo(json.dumps(shown, indent=2))


@click.command("sample")
@click.option("--model", "model_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--label", type=int, default=None, help="One label; all labels if omitted.")
@click.option("-n", "count", type=int, default=16, show_default=True,
              help="Samples (per label when --label is omitted).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False))
def sample_cmd(model_dir, label, count, seed, out_path):
    """Write a grid of samples from a model directory's ONNX graph (torch if not exported)."""
    import numpy as np

    from genline import contract
    from genline.export import onnx_sample_fn, ort_session, save_grid

    model_dir, model, meta = open_model_dir(model_dir)
    k, d = model.cfg.num_classes, model.cfg.latent_dim
    if label is not None and not 0 <= label < k:
        raise click.BadParameter(f"label {label} outside 0-{k - 1}", param_hint="--label")
    if count < 1:
        raise click.BadParameter("must be at least 1", param_hint="-n")
    onnx_path = model_dir / contract.ONNX_FP32
    if onnx_path.exists():
        _check_export_matches(model_dir, meta)
        from genline.lineage import check_stamps

        problems = check_stamps(model_dir)
        if problems:
            raise ModelDirError(f"{model_dir} is a mix of runs: " + "; ".join(problems))
        fn = onnx_sample_fn(ort_session(onnx_path))
    else:
        from genline.evaluate import torch_sample_fn

        fn = torch_sample_fn(model)
    if label is not None:  # count samples of one label, 8 a row
        labels, rows = np.full(count, label, np.int64), int(np.ceil(count / 8))
    else:  # one row per label, count samples each
        labels, rows = np.repeat(np.arange(k), count).astype(np.int64), k
    z = np.random.default_rng(seed).standard_normal((len(labels), d)).astype(np.float32)
    path = save_grid(fn(labels, z), rows, out_path)
    click.echo(f"wrote {path}")


def _short(classes) -> str:
    names = [str(c) for c in classes]
    return str(names) if len(names) <= 8 else f"{names[:3]} ... ({len(names)} classes)"


def _check_export_matches(model_dir: Path, meta: dict[str, Any]) -> None:
    """model.onnx must have been exported from this directory's checkpoint."""
    from genline import contract
    from genline.fsutil import read_json, sha256_file

    report_path = model_dir / contract.EXPORT_REPORT
    if not report_path.is_file():
        raise ModelDirError(f"{report_path} is missing, so nothing says which checkpoint "
                            f"{contract.ONNX_FP32} came from; run `genline export --model "
                            f"{model_dir}`")
    report = read_json(report_path)
    recorded = report.get(contract.CHECKPOINT_SHA256_KEY)
    actual = sha256_file(model_dir / contract.CHECKPOINT)
    if recorded != actual:
        raise ModelDirError(
            f"{model_dir} is a mix of runs: {contract.ONNX_FP32} was exported from checkpoint "
            f"sha256 {str(recorded)[:12]}..., but {contract.CHECKPOINT} is {actual[:12]}...; "
            f"run `genline export --model {model_dir}` or train into a fresh --out")
    recorded_file = (report.get("files") or {}).get(contract.ONNX_FP32)
    if recorded_file and recorded_file != sha256_file(model_dir / contract.ONNX_FP32):
        raise ModelDirError(f"{model_dir / contract.ONNX_FP32} does not match the sha256 in "
                            f"{contract.EXPORT_REPORT}: it was changed after export")


COMMANDS = [train_cmd, evaluate_cmd, export_cmd, sample_cmd]
