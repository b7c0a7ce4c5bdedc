"""Whether an ONNX file is self-contained: no tensor reads its data from an external file.

Only the protobuf is parsed; no external data is ever opened.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _tensors(graph, where: str = "graph") -> Iterator[tuple[str, Any]]:
    """Every TensorProto of a GraphProto or FunctionProto (a function has nodes only):
    initializers, Constant attributes and subgraphs."""
    for t in getattr(graph, "initializer", ()):
        yield f"{where} initializer {t.name!r}", t
    for s in getattr(graph, "sparse_initializer", ()):
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


def external_data_problem(path: Path) -> str | None:
    """Refuse an ONNX file whose tensors keep their data in external files.

    A location outside the model's directory ("../../etc/passwd", an absolute path) would make
    the server read a file the model author chose; one inside is neither staged into the
    version nor covered by export.json's sha256. Only the protobuf is parsed: no external data
    is opened. A file that is not a parseable ONNX passes here, so that Triton's load reports it
    and the version is quarantined with that error.

    Returns:
        What is wrong, naming the tensor and its location; None for a self-contained file.
    """
    import onnx
    from onnx import TensorProto

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        return None
    graphs = [("graph", model.graph)]
    graphs += [(f"function {f.name!r}", f) for f in model.functions]
    base = path.parent.resolve()
    for where, graph in graphs:
        for label, tensor in _tensors(graph, where):
            if tensor.data_location != TensorProto.EXTERNAL and not tensor.external_data:
                continue
            location = {e.key: e.value for e in tensor.external_data}.get("location", "")
            if _outside(base, location):
                return (
                    f"{path.name}: {label} reads its data from external location {location!r}, "
                    f"outside the model directory {base}: refused (untrusted ONNX)"
                )
            return (
                f"{path.name}: {label} reads its data from external file {location!r}, which "
                "publish neither stages nor verifies (export.json records no sha256 for it): "
                "export a self-contained ONNX"
            )
    return None


def _outside(base: Path, location: str) -> bool:
    """Whether `location` (relative to `base`) could name a file outside `base`."""
    if not location or os.path.isabs(location) or location.startswith(("\\", "~")):
        return True
    # ".." in either separator style: ORT on another platform may read "\" as one
    if ".." in location.replace("\\", "/").split("/"):
        return True
    return not (base / location).resolve().is_relative_to(base)
