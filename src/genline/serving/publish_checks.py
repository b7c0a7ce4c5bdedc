"""What publish checks in a model directory before any version number is assigned.

A model directory (`genline train --out DIR`) is published only when it is one training run's
output: the gate passed, export.json describes the served graph, the four stamped JSON files
(contract.STAMPED_FILES) carry the same run id and checkpoint sha256 and checkpoint.pt still has
that sha256, the class list is consistent, and every served ONNX file is self-contained (no
tensor reads its bytes from a file publish neither stages nor verifies).

Each check raises ModelDirError with a message that names the file, key or tensor at fault.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genline import contract
from genline.fsutil import read_json


class ModelDirError(ValueError):
    """The model directory cannot be published (the message says which file and why)."""


@dataclass(frozen=True)
class ModelDir:
    """A model directory that passed every check, with what publish needs from its files."""

    path: Path
    gate: dict[str, Any]
    export: dict[str, Any]
    metrics: dict[str, Any]
    dataset: dict[str, Any]
    run_id: str
    checkpoint_sha256: str
    classes: list[str] | None  # None when training recorded only the count

    @property
    def serving_variant(self) -> str:
        return self.export.get("serving_variant", contract.ONNX_FP32)

    @property
    def meta(self) -> dict[str, Any]:
        """What the Triton backend reads from serving.json (plus the class names)."""
        return {
            "num_classes": int(self.export["num_classes"]),
            "latent_dim": int(self.export["latent_dim"]),
            "image_shape": [int(d) for d in self.export["image_shape"]],
            "classes": self.classes,
        }


def _read(path: Path) -> dict[str, Any]:
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise ModelDirError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelDirError(f"{path} holds a {type(data).__name__}, expected a JSON object")
    return data


def read_model_dir(model_dir: Path) -> ModelDir:
    """Read and check a model directory (gate, export, stamps, classes, self-contained ONNX).

    Args:
        model_dir: the directory `genline train` wrote.

    Returns:
        The checked directory.

    Raises:
        ModelDirError: the first check that failed, naming the file and values.
    """
    if not model_dir.is_dir():
        raise ModelDirError(f"model directory {model_dir} does not exist")
    gate_path = model_dir / contract.GATE
    if not gate_path.is_file():
        raise ModelDirError(f"{gate_path} is missing: only a gated model can be published")
    gate = _read(gate_path)
    if gate.get("passed") is not True:
        reasons = "; ".join(map(str, gate.get("reasons", []))) or "no reasons given"
        raise ModelDirError(f"{model_dir} did not pass its quality gate: {reasons}")
    export_path = model_dir / contract.EXPORT_REPORT
    if not export_path.is_file():
        raise ModelDirError(f"{export_path} is missing: run `genline export --model {model_dir}`")
    export = _read(export_path)
    for key in ("num_classes", "latent_dim", "image_shape", "files"):
        if key not in export:
            raise ModelDirError(f"{export_path} lacks {key!r}")
    run_id, ckpt_sha = check_stamps(model_dir)
    dataset = _read(model_dir / contract.DATASET_INFO)
    classes = check_classes(model_dir, export, dataset)
    for name in {export.get("serving_variant", contract.ONNX_FP32), contract.EVALUATOR_ONNX}:
        if (model_dir / name).is_file():
            check_self_contained_onnx(model_dir / name)
    return ModelDir(
        path=model_dir,
        gate=gate,
        export=export,
        metrics=_read(model_dir / contract.METRICS),
        dataset=dataset,
        run_id=run_id,
        checkpoint_sha256=ckpt_sha,
        classes=classes,
    )


def check_stamps(model_dir: Path) -> tuple[str, str]:
    """The run id and checkpoint sha256 every stamped file agrees on (and checkpoint.pt has).

    A directory assembled from two runs (gate.json of one, model.onnx of another) would publish
    a model under metrics it never earned; the stamps (genline.lineage) make that visible.

    Returns:
        (run_id, checkpoint_sha256)

    Raises:
        ModelDirError: a stamped file is missing or lacks a stamp, the files disagree, or
            checkpoint.pt's sha256 differs from the stamp; every problem is listed.
    """
    from genline.lineage import check_stamps as stamp_problems

    problems = stamp_problems(model_dir)
    if problems:
        raise ModelDirError(
            f"{model_dir} is not one training run's output: {'; '.join(problems)} "
            "(publish the directory `genline train` wrote, unchanged)"
        )
    first = _read(model_dir / contract.STAMPED_FILES[0])
    return first[contract.RUN_ID_KEY], first[contract.CHECKPOINT_SHA256_KEY]


def check_classes(model_dir: Path, export: dict, dataset: dict) -> list[str] | None:
    """The class names training recorded (export.json and dataset.json must agree with each
    other and with num_classes); None when neither file records names."""
    n = int(export["num_classes"])
    recorded = {
        name: [str(c) for c in data["classes"]]
        for name, data in ((contract.EXPORT_REPORT, export), (contract.DATASET_INFO, dataset))
        if isinstance(data.get("classes"), list)
    }
    lists = list(recorded.values())
    if len(lists) == 2 and lists[0] != lists[1]:
        raise ModelDirError(
            f"{model_dir}: export.json records classes {format_classes(lists[0])} but "
            f"dataset.json {format_classes(lists[1])}"
        )
    if lists and len(lists[0]) != n:
        raise ModelDirError(
            f"{model_dir}: {len(lists[0])} class names {format_classes(lists[0])} but "
            f"export.json num_classes is {n}"
        )
    return lists[0] if lists else None


def format_classes(classes: list[str] | None, count: int | None = None) -> str:
    """`['a', 'b']`; long lists as `['0', '1', ..., '9'] (10 classes)`."""
    if classes is None:
        return f"{count} unnamed classes"
    if len(classes) <= 8:
        return repr(list(classes))
    head = ", ".join(map(repr, classes[:3]))
    return f"[{head}, ..., {classes[-1]!r}] ({len(classes)} classes)"


def class_change(new: dict[str, Any], old: dict[str, Any], old_version: int) -> str | None:
    """Why `new` (a serving.json meta) would change the served class set, or None.

    Names are compared when both versions record them, else only the counts.
    """
    new_n, old_n = int(new["num_classes"]), int(old["num_classes"])
    new_c, old_c = new.get("classes"), old.get("classes")
    if new_c is not None and old_c is not None:
        if list(new_c) == list(old_c):
            return None
    elif new_n == old_n:
        return None
    return (
        f"classes {format_classes(new_c, new_n)} differ from serving version {old_version}'s "
        f"{format_classes(old_c, old_n)}"
    )


def _tensors(graph, where: str = "graph") -> Iterator[tuple[str, Any]]:
    """Every TensorProto of `graph`: initializers, Constant attributes and subgraphs."""
    for t in graph.initializer:
        yield f"{where} initializer {t.name!r}", t
    for s in graph.sparse_initializer:
        yield f"{where} sparse initializer {s.values.name!r}", s.values
        yield f"{where} sparse initializer {s.values.name!r} (indices)", s.indices
    for node in graph.node:
        label = f"{where} node {node.name or node.op_type!r}"
        for attr in node.attribute:
            if attr.HasField("t"):
                yield f"{label} attribute {attr.name!r}", attr.t
            for t in attr.tensors:
                yield f"{label} attribute {attr.name!r}", t
            if attr.HasField("sparse_tensor"):
                yield f"{label} attribute {attr.name!r}", attr.sparse_tensor.values
            if attr.HasField("g"):
                yield from _tensors(attr.g, f"{label} subgraph {attr.name!r}")
            for g in attr.graphs:
                yield from _tensors(g, f"{label} subgraph {attr.name!r}")


def check_self_contained_onnx(path: Path) -> None:
    """Refuse an ONNX file whose tensors keep their data in external files.

    A location outside the model's directory ("../../etc/passwd", an absolute path) would make
    the server read a file the model author chose; one inside is neither staged into the
    version nor covered by export.json's sha256. Only the protobuf is parsed: no external data
    is opened. A file that is not a parseable ONNX passes here, so that Triton's load reports it
    and the version is quarantined with that error.

    Raises:
        ModelDirError: naming the tensor and its location.
    """
    import onnx
    from onnx import TensorProto

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        return
    graphs = [("graph", model.graph)]
    graphs += [(f"function {f.name!r}", f) for f in model.functions]
    base = path.parent.resolve()
    for where, graph in graphs:
        for label, tensor in _tensors_of(graph, where):
            if tensor.data_location != TensorProto.EXTERNAL and not tensor.external_data:
                continue
            location = {e.key: e.value for e in tensor.external_data}.get("location", "")
            if _outside(base, location):
                raise ModelDirError(
                    f"{path.name}: {label} reads its data from external location {location!r}, "
                    f"outside the model directory {base}: refused (untrusted ONNX)"
                )
            raise ModelDirError(
                f"{path.name}: {label} reads its data from external file {location!r}, which "
                "publish neither stages nor verifies (export.json records no sha256 for it): "
                "export a self-contained ONNX"
            )


def _tensors_of(graph, where: str) -> Iterator[tuple[str, Any]]:
    if hasattr(graph, "initializer"):
        yield from _tensors(graph, where)
        return
    for node in graph.node:  # a FunctionProto: nodes only
        label = f"{where} node {node.name or node.op_type!r}"
        for attr in node.attribute:
            if attr.HasField("t"):
                yield f"{label} attribute {attr.name!r}", attr.t
            for t in attr.tensors:
                yield f"{label} attribute {attr.name!r}", t


def _outside(base: Path, location: str) -> bool:
    """Whether `location` (relative to `base`) could name a file outside `base`."""
    if not location or os.path.isabs(location) or location.startswith(("\\", "~")):
        return True
    # ".." in either separator style: ORT on another platform may read "\" as one
    if ".." in location.replace("\\", "/").split("/"):
        return True
    return not (base / location).resolve().is_relative_to(base)
