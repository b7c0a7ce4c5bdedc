"""Triton model configurations, rendered from one frozen dataclass and checked against ONNX.

Two targets share the published versions (`<repo>/<model>/<N>/model.onnx`):

- CPU (what runs here): Triton's python backend runs the ONNX under ONNX Runtime
  (`backend_model.py`), so it can validate inputs per request and log every prediction.
  Rendered to `<repo>/<model>/config.pbtxt` (committed).
- GPU: Triton's onnxruntime backend with the TensorRT execution accelerator in FP16, rendered
  to `<repo>/<model>/configs/gpu.pbtxt` and selected with `tritonserver --model-config-name=gpu`.

Over Triton, `label` travels as INT64 [B, 1]: a batched Triton input needs at least one
non-batch dimension, and `reshape: { shape: [] }` hands the model the [B] the ONNX graph expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from genline import contract

GPU_CONFIG_NAME = "gpu"
WARMUP_INPUT = contract.WARMUP_INPUT  # only Triton's model_warmup sends it; never logged


@dataclass(frozen=True)
class ModelShape:
    """What the served graph looks like (from export.json or the ONNX graph itself)."""

    latent_dim: int = 64
    image_shape: tuple[int, int, int] = (1, 8, 8)  # (C, H, W)
    num_classes: int = 10


@dataclass(frozen=True)
class CpuTuning:
    """Knobs of the CPU config, chosen by `benchmarks/serving.py` (see docs/benchmarks/serving.md).

    Attributes:
        instances: python-backend model instances (stub processes).
        max_batch_size: largest batch Triton accepts (client batches and dynamic batches).
        max_queue_delay_us: dynamic-batching delay; 0 still batches what is already queued.
        ort_intra_op_threads: ONNX Runtime intra-op threads per instance.
        ort_allow_spinning: let ORT threads spin-wait (bad when client and server share 2 cores).
        versions_kept: version_policy latest N.
    """

    instances: int = 1
    max_batch_size: int = 64
    max_queue_delay_us: int = 100
    ort_intra_op_threads: int = 2
    ort_allow_spinning: bool = False
    versions_kept: int = 2


@dataclass(frozen=True)
class GpuTuning:
    instances: int = 1
    max_batch_size: int = 256
    max_queue_delay_us: int = 100
    precision_mode: str = "FP16"
    max_workspace_size_bytes: int = 1 << 30
    versions_kept: int = 2


def _model_config_pb2():
    from tritonclient.grpc import model_config_pb2  # protobuf classes of Triton's model_config

    return model_config_pb2


def _io(mc, shape: ModelShape, config) -> None:
    label = config.input.add()
    label.name = contract.INPUT_LABEL
    label.data_type = mc.TYPE_INT64
    label.dims.extend([1])
    label.reshape.SetInParent()  # shape [] : the model sees [B]
    z = config.input.add()
    z.name = contract.INPUT_Z
    z.data_type = mc.TYPE_FP32
    z.dims.extend([shape.latent_dim])
    out = config.output.add()
    out.name = contract.OUTPUT_IMAGE
    out.data_type = mc.TYPE_FP32
    out.dims.extend(list(shape.image_shape))


def build_cpu_config(
    shape: ModelShape = ModelShape(),
    tuning: CpuTuning = CpuTuning(),
    model_name: str = contract.MODEL_NAME,
):
    """The CPU `ModelConfig` protobuf (python backend running ONNX Runtime)."""
    mc = _model_config_pb2()
    _check_tuning(
        tuning.instances, tuning.max_batch_size, tuning.max_queue_delay_us, tuning.versions_kept
    )
    if tuning.ort_intra_op_threads < 1:
        raise ValueError(f"ort_intra_op_threads must be >= 1, got {tuning.ort_intra_op_threads}")
    config = mc.ModelConfig(name=model_name, backend="python", max_batch_size=tuning.max_batch_size)
    config.version_policy.latest.num_versions = tuning.versions_kept
    _io(mc, shape, config)
    group = config.instance_group.add()
    group.kind = mc.ModelInstanceGroup.KIND_CPU
    group.count = tuning.instances
    config.dynamic_batching.max_queue_delay_microseconds = tuning.max_queue_delay_us
    params = {
        "ort_intra_op_threads": str(tuning.ort_intra_op_threads),
        "ort_allow_spinning": "1" if tuning.ort_allow_spinning else "0",
    }
    for key, value in params.items():
        config.parameters[key].string_value = value
    # A real request through Triton at load: the first live request no longer pays for the
    # stub's first response path (~50-100 ms measured); ORT itself is warmed in initialize.
    marker = config.input.add()
    marker.name = WARMUP_INPUT
    marker.data_type = mc.TYPE_BOOL
    marker.dims.extend([1])
    marker.optional = True
    warm = config.model_warmup.add()
    warm.name = WARMUP_INPUT
    warm.batch_size = 1
    for name, dtype, dims in (
        (contract.INPUT_LABEL, mc.TYPE_INT64, [1]),
        (contract.INPUT_Z, mc.TYPE_FP32, [shape.latent_dim]),
        (WARMUP_INPUT, mc.TYPE_BOOL, [1]),
    ):
        entry = warm.inputs[name]
        entry.data_type = dtype
        entry.dims.extend(dims)
        entry.zero_data = True
    return config


def build_gpu_config(
    shape: ModelShape = ModelShape(),
    tuning: GpuTuning = GpuTuning(),
    model_name: str = contract.MODEL_NAME,
):
    """The GPU `ModelConfig`: onnxruntime backend + TensorRT execution accelerator (FP16).

    The engine is built by ONNX Runtime's TensorRT provider on first load and cached next to the
    version (`trt_engine_cache_path`), so the ONNX stays the portable source of truth.
    """
    mc = _model_config_pb2()
    _check_tuning(
        tuning.instances, tuning.max_batch_size, tuning.max_queue_delay_us, tuning.versions_kept
    )
    if tuning.precision_mode not in ("FP32", "FP16"):
        raise ValueError(f"precision_mode must be FP32 or FP16, got {tuning.precision_mode!r}")
    config = mc.ModelConfig(
        name=model_name,
        backend="onnxruntime",
        max_batch_size=tuning.max_batch_size,
        default_model_filename=contract.ONNX_FP32,
    )
    config.version_policy.latest.num_versions = tuning.versions_kept
    _io(mc, shape, config)
    group = config.instance_group.add()
    group.kind = mc.ModelInstanceGroup.KIND_GPU
    group.count = tuning.instances
    group.gpus.extend([0])
    config.dynamic_batching.max_queue_delay_microseconds = tuning.max_queue_delay_us
    trt = config.optimization.execution_accelerators.gpu_execution_accelerator.add()
    trt.name = "tensorrt"
    trt.parameters["precision_mode"] = tuning.precision_mode
    trt.parameters["max_workspace_size_bytes"] = str(tuning.max_workspace_size_bytes)
    trt.parameters["trt_engine_cache_enable"] = "1"
    trt.parameters["trt_engine_cache_path"] = "/tmp/genline_trt_cache"
    # Warm up at the sizes the engine profile must cover, so no live request builds an engine.
    for batch in (1, tuning.max_batch_size):
        warm = config.model_warmup.add()
        warm.name = f"warmup_batch_{batch}"
        warm.batch_size = batch
        label = warm.inputs[contract.INPUT_LABEL]
        label.data_type = mc.TYPE_INT64
        label.dims.extend([1])
        label.zero_data = True
        z = warm.inputs[contract.INPUT_Z]
        z.data_type = mc.TYPE_FP32
        z.dims.extend([shape.latent_dim])
        z.random_data = True
    return config


def _check_tuning(instances: int, max_batch: int, delay_us: int, kept: int) -> None:
    if instances < 1:
        raise ValueError(f"instances must be >= 1, got {instances}")
    if not 1 <= max_batch <= 4096:
        raise ValueError(f"max_batch_size must be in 1..4096, got {max_batch}")
    if delay_us < 0:
        raise ValueError(f"max_queue_delay_us must be >= 0, got {delay_us}")
    if kept < 1:
        raise ValueError(f"versions_kept must be >= 1, got {kept}")


HEADER = (
    "# Generated by genline.serving.config ({fn}); edit the dataclass defaults and regenerate\n"
    "# with `genline serve --write-config`. A test checks this file matches the generator.\n"
)


def to_pbtxt(config, generator: str) -> str:
    from google.protobuf import text_format

    return HEADER.format(fn=generator) + text_format.MessageToString(config)


def render_cpu_config(
    shape: ModelShape = ModelShape(),
    tuning: CpuTuning = CpuTuning(),
    model_name: str = contract.MODEL_NAME,
) -> str:
    return to_pbtxt(build_cpu_config(shape, tuning, model_name), "build_cpu_config")


def render_gpu_config(
    shape: ModelShape = ModelShape(),
    tuning: GpuTuning = GpuTuning(),
    model_name: str = contract.MODEL_NAME,
) -> str:
    return to_pbtxt(build_gpu_config(shape, tuning, model_name), "build_gpu_config")


def parse_config(path_or_text: str | Path):
    """Parse a config.pbtxt (path or text) into a `ModelConfig`; a clear error if malformed."""
    from google.protobuf import text_format

    text = path_or_text
    where = "<text>"
    if isinstance(path_or_text, Path) or (
        isinstance(path_or_text, str) and "\n" not in path_or_text and Path(path_or_text).exists()
    ):
        where = str(path_or_text)
        text = Path(path_or_text).read_text(encoding="utf-8")
    try:
        return text_format.Parse(text, _model_config_pb2().ModelConfig())
    except text_format.ParseError as exc:
        raise ValueError(f"{where}: not a valid Triton model config: {exc}") from exc


def write_configs(
    repository: Path,
    shape: ModelShape = ModelShape(),
    cpu: CpuTuning = CpuTuning(),
    gpu: GpuTuning = GpuTuning(),
    model_name: str = contract.MODEL_NAME,
) -> list[Path]:
    """Write the CPU config.pbtxt and configs/gpu.pbtxt of `model_name` into `repository`."""
    from genline.fsutil import atomic_write_bytes

    model_dir = Path(repository) / model_name
    paths = [model_dir / "config.pbtxt", model_dir / "configs" / f"{GPU_CONFIG_NAME}.pbtxt"]
    atomic_write_bytes(paths[0], render_cpu_config(shape, cpu, model_name).encode())
    atomic_write_bytes(paths[1], render_gpu_config(shape, gpu, model_name).encode())
    return paths


_ONNX_TO_TRITON = {
    1: "TYPE_FP32",
    7: "TYPE_INT64",
    10: "TYPE_FP16",
    6: "TYPE_INT32",
    11: "TYPE_FP64",
    9: "TYPE_BOOL",
    3: "TYPE_INT8",
    2: "TYPE_UINT8",
}


def onnx_signature(onnx_path: str | Path) -> dict[str, dict]:
    """Inputs and outputs of an ONNX graph: name -> {"dtype": TYPE_*, "shape": [dims]}.

    Symbolic dimensions come back as -1.
    """
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    sig: dict[str, dict] = {}
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for value in values:
            if value.name in initializers:
                continue
            ttype = value.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in ttype.shape.dim]
            sig[value.name] = {
                "kind": kind,
                "dtype": _ONNX_TO_TRITON.get(ttype.elem_type, f"ONNX_{ttype.elem_type}"),
                "shape": dims,
            }
    return sig


def check_config_against_onnx(config, onnx_path: str | Path) -> list[str]:
    """Every mismatch between a Triton `ModelConfig` and the ONNX graph it serves.

    Returns:
        A list of human-readable problems; empty when names, dtypes and shapes agree.
    """
    mc = _model_config_pb2()
    sig = onnx_signature(onnx_path)
    problems: list[str] = []
    declared = {}
    for kind, tensors in (("input", config.input), ("output", config.output)):
        for t in tensors:
            dims = list(t.reshape.shape) if t.HasField("reshape") else list(t.dims)
            if config.max_batch_size > 0:
                dims = [-1, *dims]
            declared[t.name] = {"kind": kind, "dtype": mc.DataType.Name(t.data_type), "shape": dims}
    for name, want in sig.items():
        got = declared.get(name)
        if got is None:
            problems.append(f"{want['kind']} {name!r} of the ONNX graph is missing from the config")
            continue
        if got["kind"] != want["kind"]:
            problems.append(f"{name!r} is an {want['kind']} in ONNX but an {got['kind']} in config")
        if got["dtype"] != want["dtype"]:
            problems.append(f"{name!r}: config dtype {got['dtype']} != ONNX {want['dtype']}")
        if len(got["shape"]) != len(want["shape"]) or any(
            w != -1 and g != w for g, w in zip(got["shape"], want["shape"], strict=False)
        ):
            problems.append(f"{name!r}: config shape {got['shape']} != ONNX {want['shape']}")
    for name in declared:
        if name not in sig and name != WARMUP_INPUT:
            problems.append(f"config declares {name!r}, which the ONNX graph does not have")
    return problems
