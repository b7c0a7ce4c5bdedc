"""A small model directory with the contract's graph names, built with onnx.helper (no torch).

Used where a trained generator is not needed (config checks, spool tests) and, in integration
tests, only when `genline.workflow.run_training` is unavailable.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from genline import contract
from genline.fsutil import atomic_write_json, read_json, sha256_file
from genline.gate import GateConfig, check_gate

NUM_CLASSES, LATENT, SHAPE = 10, 64, (1, 8, 8)

# metrics that pass the default gate (gate.json is written by genline.gate.check_gate on them)
FIXTURE_METRICS = {
    "fd": 1.3,
    "fd_real": 1.0,
    "fd_ratio": 1.3,
    "conditional_accuracy": 0.97,
    "evaluator_accuracy": 0.97,
    "conditional_accuracy_ratio": 1.0,
    "diversity_ratio": 0.9,
    "nn_distance_ratio": 0.9,
    "min_test_images_per_class": 30,
    "num_classes": NUM_CLASSES,
}


def generator_graph(seed: int = 0, scale: float = 1.0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    emb = numpy_helper.from_array(
        rng.standard_normal((NUM_CLASSES, LATENT)).astype(np.float32), "emb"
    )
    w = numpy_helper.from_array(
        (scale * rng.standard_normal((LATENT, LATENT)) / 8).astype(np.float32), "w"
    )
    shape = numpy_helper.from_array(np.array([-1, *SHAPE], np.int64), "shape")
    nodes = [
        helper.make_node("Gather", ["emb", contract.INPUT_LABEL], ["e"], axis=0),
        helper.make_node("MatMul", [contract.INPUT_Z, "w"], ["h"]),
        helper.make_node("Add", ["h", "e"], ["s"]),
        helper.make_node("Sigmoid", ["s"], ["p"]),
        helper.make_node("Reshape", ["p", "shape"], [contract.OUTPUT_IMAGE]),
    ]
    graph = helper.make_graph(
        nodes,
        "fixture_generator",
        [
            helper.make_tensor_value_info(contract.INPUT_LABEL, TensorProto.INT64, ["B"]),
            helper.make_tensor_value_info(contract.INPUT_Z, TensorProto.FLOAT, ["B", LATENT]),
        ],
        [helper.make_tensor_value_info(contract.OUTPUT_IMAGE, TensorProto.FLOAT, ["B", *SHAPE])],
        [emb, w, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", contract.ONNX_OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def evaluator_graph(seed: int = 1) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.standard_normal((64, 32)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((32, NUM_CLASSES)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("Flatten", [contract.EVAL_INPUT], ["f"], axis=1),
        helper.make_node("MatMul", ["f", "w1"], ["a"]),
        helper.make_node("Relu", ["a"], [contract.EVAL_FEATURES]),
        helper.make_node("MatMul", [contract.EVAL_FEATURES, "w2"], [contract.EVAL_LOGITS]),
    ]
    graph = helper.make_graph(
        nodes,
        "fixture_evaluator",
        [helper.make_tensor_value_info(contract.EVAL_INPUT, TensorProto.FLOAT, ["B", *SHAPE])],
        [
            helper.make_tensor_value_info(
                contract.EVAL_LOGITS, TensorProto.FLOAT, ["B", NUM_CLASSES]
            ),
            helper.make_tensor_value_info(contract.EVAL_FEATURES, TensorProto.FLOAT, ["B", 32]),
        ],
        [w1, w2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", contract.ONNX_OPSET)])
    model.ir_version = 8
    return model


def make_model_dir(
    path: str | Path,
    *,
    seed: int = 0,
    passed: bool = True,
    corrupt_onnx: bool = False,
    stamp: bool = True,
) -> Path:
    """Write a model dir (model.onnx, evaluator.onnx, export.json, gate/metrics/dataset.json),
    stamped as one training run unless `stamp` is False."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    onnx_path = path / contract.ONNX_FP32
    if corrupt_onnx:
        onnx_path.write_bytes(b"this is not an onnx model" * 10)
    else:
        onnx.save(generator_graph(seed), onnx_path)
    onnx.save(evaluator_graph(), path / contract.EVALUATOR_ONNX)
    atomic_write_json(
        path / contract.EXPORT_REPORT,
        {
            "num_classes": NUM_CLASSES,
            "latent_dim": LATENT,
            "image_shape": list(SHAPE),
            "serving_variant": contract.ONNX_FP32,
            "files": {
                contract.ONNX_FP32: sha256_file(onnx_path),
                contract.EVALUATOR_ONNX: sha256_file(path / contract.EVALUATOR_ONNX),
            },
        },
    )
    metrics = {**FIXTURE_METRICS, "fd_ratio": 1.3 if passed else 9.1}
    gate = check_gate(metrics)
    atomic_write_json(path / contract.GATE, {**gate.to_json(), "config": asdict(GateConfig())})
    atomic_write_json(path / contract.METRICS, metrics)
    atomic_write_json(path / contract.DATASET_INFO, {"fingerprint": f"fixture-{seed}"})
    return stamp_model_dir(path) if stamp else path


# --- lineage stamps (contract.STAMPED_FILES) ---------------------------------------------------


def is_stamped(path: str | Path) -> bool:
    """Whether publish accepts the directory's stamps (one run id, checkpoint.pt's sha256)."""
    from genline.serving.publish_checks import ModelDirError, check_stamps

    try:
        check_stamps(Path(path))
    except ModelDirError:
        return False
    return True


def stamp_model_dir(path: str | Path, run_id: str | None = None) -> Path:
    """Stamp the four JSON files with one run id and checkpoint.pt's sha256, as `genline train`
    does (a fixture dir, which has no torch weights, gets placeholder checkpoint bytes)."""
    path = Path(path)
    ckpt = path / contract.CHECKPOINT
    if not ckpt.exists():
        ckpt.write_bytes(b"fixture checkpoint " + uuid.uuid4().hex.encode())
    stamps = {
        contract.RUN_ID_KEY: run_id or uuid.uuid4().hex,
        contract.CHECKPOINT_SHA256_KEY: sha256_file(ckpt),
    }
    for name in contract.STAMPED_FILES:
        data = read_json(path / name) if (path / name).is_file() else {}
        atomic_write_json(path / name, {**data, **stamps})
    return path


def copy_model_dir(
    src: Path, dest: Path, *, tag: str | None = None, classes: list[str] | None = None
) -> Path:
    """A stamped copy of a model dir; `tag` makes its served ONNX bytes (and sha256) differ with
    the same graph, `classes` rewrites the class list export.json and dataset.json record."""
    dest = Path(shutil.copytree(src, dest))
    if not is_stamped(dest):
        stamp_model_dir(dest)
    export = read_json(dest / contract.EXPORT_REPORT)
    if tag is not None:
        variant = export.get("serving_variant", contract.ONNX_FP32)
        model = onnx.load(str(dest / variant))
        model.doc_string = f"genline test variant {tag}"
        onnx.save(model, str(dest / variant))
        export["files"][variant] = sha256_file(dest / variant)
    if classes is not None:
        export["classes"] = list(classes)
        export["num_classes"] = len(classes)
        dataset = read_json(dest / contract.DATASET_INFO)
        atomic_write_json(dest / contract.DATASET_INFO, {**dataset, "classes": list(classes)})
    atomic_write_json(dest / contract.EXPORT_REPORT, export)
    return dest
