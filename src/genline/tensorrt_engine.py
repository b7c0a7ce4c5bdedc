"""Build a TensorRT engine from the exported ONNX generator, or record why it was not built.

The ONNX stays the portable source of truth; an engine is specific to one GPU architecture and
one TensorRT version, so both are recorded with it (and in the file name). Without a CUDA GPU or
without the `tensorrt` package (the CPU image has neither) nothing is built and the report says
which of them was missing. Core code (no kfp): the `build_tensorrt` component is a thin
adapter over `build_engine`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPORT = "tensorrt.json"


def _skip(out: Path, reason: str, **extra: Any) -> dict[str, Any]:
    report = {"built": False, "reason": reason, **extra}
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT).write_text(json.dumps(report, indent=2))
    return report


def gpu_status() -> tuple[bool, str]:
    """(usable, explanation) for building an engine on this machine."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a genline dependency
        return False, "torch is not installed"
    if not torch.cuda.is_available():
        return False, f"no CUDA GPU visible to torch {torch.__version__}"
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False, "the tensorrt package is not installed (it ships in Dockerfile.gpu's image)"
    return True, torch.cuda.get_device_name(0)


def build_engine(
    onnx_path: str | Path,
    out_dir: str | Path,
    target: str = "gpu",
    precision: str = "fp16",
    max_batch: int = 256,
) -> dict[str, Any]:
    """Build `out_dir/model.<sm>.trt<version>.plan` from `onnx_path` and write tensorrt.json.

    Args:
        onnx_path: the generator's model.onnx (dynamic batch).
        out_dir: where the engine and tensorrt.json go.
        target: "cpu" skips on purpose; "gpu" builds when a GPU and TensorRT are present.
        precision: "fp16" or "fp32".
        max_batch: the largest batch of the optimisation profile.

    Returns:
        The report: {"built": bool, "reason" | "engine", "gpu", "compute_capability", ...}.
    """
    out = Path(out_dir)
    if target not in ("cpu", "gpu"):
        raise ValueError(f"target must be 'cpu' or 'gpu', got {target!r}")
    if precision not in ("fp16", "fp32"):
        raise ValueError(f"precision must be 'fp16' or 'fp32', got {precision!r}")
    if not Path(onnx_path).is_file():
        raise FileNotFoundError(f"{onnx_path}: no ONNX model to build an engine from")
    if target == "cpu":
        return _skip(out, "target is cpu: Triton serves the ONNX with ONNX Runtime on CPU")
    usable, detail = gpu_status()
    if not usable:
        return _skip(out, f"TensorRT engine not built: {detail}")

    import tensorrt as trt
    import torch

    from genline import contract
    from genline.fsutil import atomic_write_bytes, sha256_file

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = tuple(tensor.shape)[1:]
        profile.set_shape(tensor.name, (1, *rest), (min(64, max_batch), *rest), (max_batch, *rest))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    major, minor = torch.cuda.get_device_capability(0)
    name = f"model.sm{major}{minor}.trt{trt.__version__}.plan"
    atomic_write_bytes(out / name, bytes(plan))
    report = {
        "built": True,
        "engine": name,
        "sha256": sha256_file(out / name),
        "gpu": detail,
        "compute_capability": f"{major}.{minor}",
        "tensorrt_version": trt.__version__,
        "precision": precision,
        "profile": {"min": 1, "opt": min(64, max_batch), "max": max_batch},
        "inputs": [contract.INPUT_LABEL, contract.INPUT_Z],
        "onnx_sha256": sha256_file(Path(onnx_path)),
    }
    (out / REPORT).write_text(json.dumps(report, indent=2))
    return report
