"""ONNX export with a parity check on the simplified graph, sample grids, and export.json.

The generator's whole sampler (fixed steps, guidance inside the graph) is exported as one graph
with the legacy TorchScript-based exporter (`dynamo=False`), which unrolls the loop, then
simplified. Which variant serves (FP32, INT8, the distilled student) is genline.variants.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genline import contract
from genline.fsutil import atomic_write_json, sha256_file

PARITY_SAMPLES = 256
PARITY_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """The exported graph is invalid or disagrees with the torch model."""


@dataclass(frozen=True)
class ExportConfig:
    opset: int = contract.ONNX_OPSET
    parity_samples: int = PARITY_SAMPLES
    parity_tolerance: float = PARITY_TOLERANCE
    try_int8: bool = True
    seed: int = 0


def ort_session(path: str | Path, threads: int = 1):
    """An ONNX Runtime CPU session with `threads` intra-op threads and spinning off."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def onnx_sample_fn(session) -> Any:
    def fn(labels: np.ndarray, z: np.ndarray) -> np.ndarray:
        outs = [session.run([contract.OUTPUT_IMAGE],
                            {contract.INPUT_LABEL: lb, contract.INPUT_Z: zb})[0]
                for lb, zb in zip(np.array_split(labels, max(1, len(labels) // 256)),
                                  np.array_split(z, max(1, len(labels) // 256)), strict=True)]
        return np.concatenate(outs)

    return fn


def _atomic_onnx_export(model: torch.nn.Module, args: tuple, path: Path, input_names: list[str],
                        output_names: list[str], dynamic_axes: dict, opset: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        torch.onnx.export(model, args, str(tmp), input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic_axes,
                          opset_version=opset, dynamo=False)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def export_generator(model: torch.nn.Module, path: str | Path,
                     cfg: ExportConfig = ExportConfig(),
                     reference: torch.nn.Module | None = None) -> dict[str, Any]:
    """Export, check with onnx.checker and compare with torch on random inputs (with
    `reference`, a model the exported one must match, e.g. the one `Generator.folded` copied;
    else `model` itself).

    Raises:
        ExportError: when the checker fails or parity exceeds the tolerance (the file is removed).
    """
    import onnx

    path = Path(path)
    gcfg = model.cfg
    model.eval()
    label = torch.zeros(2, dtype=torch.int64)
    z = torch.zeros(2, gcfg.latent_dim)
    raw = path.with_name(f".{path.name}.raw.onnx")
    try:
        _atomic_onnx_export(
            model, (label, z), raw, [contract.INPUT_LABEL, contract.INPUT_Z],
            [contract.OUTPUT_IMAGE],
            {contract.INPUT_LABEL: {0: "batch"}, contract.INPUT_Z: {0: "batch"},
             contract.OUTPUT_IMAGE: {0: "batch"}}, cfg.opset)
        nodes = simplify_onnx(raw, path)
    finally:
        raw.unlink(missing_ok=True)
    try:
        onnx.checker.check_model(str(path), full_check=True)
        rng = np.random.default_rng(cfg.seed)
        labels = rng.integers(0, gcfg.num_classes, cfg.parity_samples).astype(np.int64)
        zs = rng.standard_normal((cfg.parity_samples, gcfg.latent_dim)).astype(np.float32)
        with torch.no_grad():
            ref = (reference if reference is not None else model).eval()(
                torch.from_numpy(labels), torch.from_numpy(zs)).numpy()
        got = onnx_sample_fn(ort_session(path))(labels, zs)
        diff = float(np.abs(ref - got).max())
        if got.shape != ref.shape or not diff <= cfg.parity_tolerance:
            raise ExportError(f"ONNX/torch parity failed on {cfg.parity_samples} inputs: max abs "
                              f"diff {diff:.3g} > {cfg.parity_tolerance:g} (shapes {got.shape} "
                              f"vs {ref.shape})")
    except Exception as exc:
        path.unlink(missing_ok=True)
        if isinstance(exc, ExportError):
            raise
        raise ExportError(f"exported graph {path.name} is invalid: {exc}") from exc
    return {"parity_max_abs_diff": diff, "parity_samples": cfg.parity_samples,
            "parity_tolerance": cfg.parity_tolerance, "opset": cfg.opset,
            "parity_checked_on": "simplified graph", **nodes}


def _node_counts(model) -> dict[str, int]:
    ops = [n.op_type for n in model.graph.node]
    return {"nodes": len(ops), "constant": ops.count("Constant"), "shape": ops.count("Shape")}


def simplify_onnx(src: Path, dst: Path) -> dict[str, Any]:
    """Constant folding, redundant-node elimination and shape inference on an exported graph:
    ONNX Runtime's offline optimisation at the basic level (standard ONNX ops only, so the
    graph stays portable), initializers folded back in, inferred shapes recorded.

    Returns:
        Node counts before and after (all nodes, Constant, Shape).
    """
    import onnx
    import onnxruntime as ort

    before = _node_counts(onnx.load(str(src)))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    tmp = dst.with_name(f".{dst.name}.opt.onnx")
    so.optimized_model_filepath = str(tmp)
    so.log_severity_level = 3
    try:
        ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
        simplified = onnx.shape_inference.infer_shapes(onnx.load(str(tmp)))
        # ORT writes constants it folded as initializers: keep them inside the file
        onnx.save_model(simplified, str(tmp), save_as_external_data=False)
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)
    after = _node_counts(onnx.load(str(dst)))
    return {"nodes_exported": before, "nodes_simplified": after}


def export_evaluator(evaluator: torch.nn.Module, path: str | Path, opset: int) -> None:
    c, s = evaluator.channels, evaluator.image_size
    _atomic_onnx_export(
        evaluator.eval(), (torch.zeros(2, c, s, s),), Path(path), [contract.EVAL_INPUT],
        [contract.EVAL_LOGITS, contract.EVAL_FEATURES],
        {contract.EVAL_INPUT: {0: "batch"}, contract.EVAL_LOGITS: {0: "batch"},
         contract.EVAL_FEATURES: {0: "batch"}}, opset)


# --- timing ---------------------------------------------------------------------------------------


def time_session(session, num_classes: int, latent_dim: int, batch: int,
                 repeats: int = 30) -> float:
    """Median seconds per call at this batch size."""
    labels = (np.arange(batch) % num_classes).astype(np.int64)
    z = np.random.default_rng(0).standard_normal((batch, latent_dim)).astype(np.float32)
    feed = {contract.INPUT_LABEL: labels, contract.INPUT_Z: z}
    for _ in range(3):
        session.run(None, feed)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


# --- sample grids ---------------------------------------------------------------------------------


def save_grid(images: np.ndarray, rows: int, path: str | Path, scale: int = 4,
              row_names: list[str] | None = None) -> Path:
    """Tile (N, C, H, W) images into `rows` rows (row-major) and write a PNG (pixel-exact)."""
    from PIL import Image

    n, c, h, w = images.shape
    cols = int(np.ceil(n / rows))
    pad = 1
    canvas = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, c), np.float32) * 0.5
    for i in range(n):
        r, col = divmod(i, cols)
        y0, x0 = pad + r * (h + pad), pad + col * (w + pad)
        canvas[y0:y0 + h, x0:x0 + w] = images[i].transpose(1, 2, 0)
    arr = (np.clip(canvas, 0, 1) * 255).round().astype(np.uint8)
    img = Image.fromarray(arr[..., 0] if c == 1 else arr, mode="L" if c == 1 else "RGB")
    img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    img.save(tmp)
    tmp.replace(path)
    return path


def sample_grid(sample_fn, num_classes: int, latent_dim: int, path: str | Path,
                per_row: int = 10, seed: int = 0) -> Path:
    """One row per label, `per_row` samples each."""
    labels = np.repeat(np.arange(num_classes), per_row).astype(np.int64)
    z = np.random.default_rng(seed).standard_normal((len(labels), latent_dim)).astype(np.float32)
    return save_grid(sample_fn(labels, z), num_classes, path)


# --- a model directory ----------------------------------------------------------------------------


def export_model_dir(model_dir: str | Path, dataset=None,
                     cfg: ExportConfig = ExportConfig()) -> dict[str, Any]:
    """Export the checkpoint in `model_dir` to model.onnx (+ evaluator.onnx, INT8, samples.png).

    What serves (`serving_variant`): the distilled student when export_student adopts it, else
    the teacher; then, with `dataset` given and `cfg.try_int8`, the INT8 variant of that graph
    when it pays off (scored with the same evaluator and gated metrics as its FP32 graph, its
    speed measured). Every decision and its reasons are recorded in export.json (`student`,
    `student.int8`, `int8`) along with the sha256 of every exported file.
    """
    from genline.evaluator_net import load_evaluator
    from genline.lineage import stamp
    from genline.model import load_generator
    from genline.variants import export_student, measure_int8

    model_dir = Path(model_dir)
    model, ckpt = load_generator(model_dir / contract.CHECKPOINT)
    g = model.cfg
    fp32_path = model_dir / contract.ONNX_FP32
    report: dict[str, Any] = {
        "num_classes": g.num_classes,
        "latent_dim": g.latent_dim,
        "image_shape": list(g.image_shape),
        "classes": ckpt.get("dataset", {}).get("classes"),
        "dataset_fingerprint": ckpt.get("dataset", {}).get("fingerprint"),
        **stamp(model_dir / contract.CHECKPOINT, ckpt),
        "inputs": {contract.INPUT_LABEL: {"dtype": "INT64", "shape": [-1]},
                   contract.INPUT_Z: {"dtype": "FP32", "shape": [-1, g.latent_dim]}},
        "outputs": {contract.OUTPUT_IMAGE: {"dtype": "FP32", "shape": [-1, *g.image_shape]}},
    }
    report["parity"] = export_generator(model, fp32_path, cfg)
    files = {contract.ONNX_FP32: sha256_file(fp32_path)}

    eval_ckpt = model_dir / contract.EVALUATOR_CHECKPOINT
    if eval_ckpt.exists():
        evaluator, _ = load_evaluator(eval_ckpt)
        export_evaluator(evaluator, model_dir / contract.EVALUATOR_ONNX, cfg.opset)
        files[contract.EVALUATOR_ONNX] = sha256_file(model_dir / contract.EVALUATOR_ONNX)
        if dataset is not None:  # the drift embedding, fitted once on the training split
            from genline.data import split
            from genline.embedding import Embedding

            Embedding.fit(model_dir / contract.EVALUATOR_ONNX, split(dataset).train.images).save(
                model_dir / contract.EMBEDDING)
            files[contract.EMBEDDING] = sha256_file(model_dir / contract.EMBEDDING)

    sample_grid(onnx_sample_fn(ort_session(fp32_path)), g.num_classes, g.latent_dim,
                model_dir / contract.SAMPLES_PNG)

    for stale in (contract.ONNX_INT8, contract.ONNX_STUDENT_INT8):  # an earlier export's
        (model_dir / stale).unlink(missing_ok=True)
    # the student first: when it serves, the INT8 trial is of its graph, not the teacher's
    student = export_student(model_dir, fp32_path, g, cfg, dataset=dataset)
    serving = contract.ONNX_FP32
    if student is not None:
        report["student"] = student
        if student.get("exported"):
            files[contract.ONNX_STUDENT] = sha256_file(model_dir / contract.ONNX_STUDENT)
        if student.get("adopted"):
            serving = contract.ONNX_STUDENT
            report["served_metrics"] = student["metrics_student"]
            if student.get("int8", {}).get("adopted"):
                serving = contract.ONNX_STUDENT_INT8
                files[serving] = sha256_file(model_dir / serving)
                report["served_metrics"] = student["int8"]["metrics_int8"]
    if serving == contract.ONNX_FP32 and cfg.try_int8:
        int8 = measure_int8(model_dir, fp32_path, g, dataset, cfg)
    else:
        int8 = {"adopted": False, "reasons": [
            "not tried: the distilled student serves" if serving != contract.ONNX_FP32
            else "INT8 not tried"]}
    if int8.get("adopted"):
        serving = contract.ONNX_INT8
        files[contract.ONNX_INT8] = sha256_file(model_dir / contract.ONNX_INT8)
        report["served_metrics"] = int8["metrics_int8"]
    report["int8"] = int8
    report["serving_variant"] = serving
    report["files"] = files
    report["torch_version"] = torch.__version__
    atomic_write_json(model_dir / contract.EXPORT_REPORT, report)
    return report

