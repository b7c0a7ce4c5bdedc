"""Assembling a version directory in the repository's staging area before its atomic rename."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from genline import contract
from genline.fsutil import sha256_file
from genline.serving import repository as repo_mod

BACKEND_MODEL = Path(__file__).with_name("backend_model.py")


class StagingError(RuntimeError):
    """A staged file is missing, corrupt, or does not match the committed config."""


def stage_files(model_dir: Path, export: dict, stage: Path) -> dict[str, str]:
    """Copy the served files into `stage` and verify each against export.json's sha256.

    Args:
        model_dir: the training output.
        export: its export.json.
        stage: an empty staging directory (`repository.staging_dir`).

    Returns:
        sha256 by staged file name (the ONNX and, when exported, the evaluator and embedding).

    Raises:
        StagingError: a file is unrecorded, missing, or its bytes differ from the record.
    """
    variant = export.get("serving_variant", contract.ONNX_FP32)
    files = export["files"]
    plan = {contract.ONNX_FP32: variant}
    if contract.EVALUATOR_ONNX in files:
        plan[contract.EVALUATOR_ONNX] = contract.EVALUATOR_ONNX
    if contract.EMBEDDING in files:  # the drift embedding, beside its evaluator
        plan[contract.EMBEDDING] = contract.EMBEDDING
    digests: dict[str, str] = {}
    for dest_name, src_name in plan.items():
        src = model_dir / src_name
        if src_name not in files:
            raise StagingError(f"export.json records no sha256 for {src_name}")
        if not src.is_file():
            raise StagingError(f"{src} is missing")
        shutil.copyfile(src, stage / dest_name)
        digest = sha256_file(stage / dest_name)
        if digest != files[src_name]:
            raise StagingError(
                f"sha256 of {src_name} ({digest[:12]}...) does not match the "
                f"training output recorded in export.json ({files[src_name][:12]}...)"
            )
        digests[dest_name] = digest
    shutil.copyfile(BACKEND_MODEL, stage / contract.BACKEND_MODEL)
    return digests


def check_against_config(repository: Path, model: str, onnx_path: Path) -> None:
    """The committed config.pbtxt must describe this graph (names, dtypes, shapes).

    Raises:
        StagingError: listing the mismatches and how to regenerate the config.
    """
    from genline.serving.config import check_config_against_onnx, parse_config

    config = parse_config(repo_mod.model_dir(repository, model) / "config.pbtxt")
    try:
        problems = check_config_against_onnx(config, onnx_path)
    except Exception:  # an unreadable ONNX: Triton's load reports it and the version is quarantined
        return
    if problems:
        raise StagingError(
            "the model does not match config.pbtxt (regenerate it with "
            "`genline serve --write-config --model DIR`): " + "; ".join(problems)
        )


def reshape_config_for_first_version(repository: Path, model: str, meta: dict) -> list[str]:
    """Before the first version of `model` is published, make config.pbtxt (and the GPU
    config) describe this model's shapes (z width, image C x H x W) when it does not: a 32x32
    RGB model in a repository made from the committed 8x8 config. Only the shapes change
    (inputs, outputs, warmup requests); the tuning stays. Never called once a version exists:
    then a mismatch is refused by `check_against_config`.

    Returns:
        What changed (empty when the config already fits).
    """
    from google.protobuf import text_format

    from genline.fsutil import atomic_write_bytes
    from genline.serving.config import GPU_CONFIG_NAME, parse_config

    want = {contract.INPUT_Z: [int(meta["latent_dim"])],
            contract.OUTPUT_IMAGE: [int(d) for d in meta["image_shape"]]}
    base = repo_mod.model_dir(repository, model)
    changed: list[str] = []
    for path in (base / "config.pbtxt", base / "configs" / f"{GPU_CONFIG_NAME}.pbtxt"):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        config = parse_config(text)
        before = text_format.MessageToString(config)
        warmups = [(name, t) for w in config.model_warmup for name, t in w.inputs.items()]
        for name, t in [*((t.name, t) for t in [*config.input, *config.output]), *warmups]:
            if name in want and list(t.dims) != want[name]:
                del t.dims[:]
                t.dims.extend(want[name])
        if text_format.MessageToString(config) != before:
            header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
            atomic_write_bytes(path, (header + text_format.MessageToString(config)).encode())
            changed.append(f"{path}: z {want[contract.INPUT_Z]}, image "
                           f"{want[contract.OUTPUT_IMAGE]}")
    return changed


def fsync_dir(path: Path) -> None:
    """fsync every entry of `path` and `path` itself (before the rename makes it a version)."""
    for p in [*path.iterdir(), path]:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
