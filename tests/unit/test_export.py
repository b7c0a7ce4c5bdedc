"""ONNX export: graph names and dynamic batch, parity, loud failure, INT8 decision rule."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from genline import contract
from genline.export import ExportConfig, ExportError, export_generator, ort_session
from genline.model import Generator, GeneratorConfig
from genline.variants import decide_int8


@pytest.fixture(scope="module")
def small_generator():
    torch.manual_seed(0)
    g = Generator(GeneratorConfig(hidden=64, depth=1, sample_steps=4))
    torch.nn.init.normal_(g.net.out.weight, std=0.05)  # not the zero init: outputs vary
    return g.eval()


def test_export_parity_and_contract(tmp_path, small_generator):
    path = tmp_path / "g.onnx"
    report = export_generator(small_generator, path)
    assert report["parity_max_abs_diff"] <= 1e-4 and report["parity_samples"] >= 256
    m = onnx.load(str(path))
    assert m.opset_import[0].version >= 17
    ins = {i.name: i for i in m.graph.input}
    assert set(ins) == {contract.INPUT_LABEL, contract.INPUT_Z}
    assert ins[contract.INPUT_LABEL].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert ins[contract.INPUT_Z].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [o.name for o in m.graph.output] == [contract.OUTPUT_IMAGE]
    sess = ort_session(path)
    for b in (1, 7, 300):  # dynamic batch
        out = sess.run(None, {contract.INPUT_LABEL: np.zeros(b, np.int64),
                              contract.INPUT_Z: np.zeros((b, 64), np.float32)})[0]
        assert out.shape == (b, 1, 8, 8)


def test_parity_failure_is_loud_and_leaves_no_file(tmp_path, small_generator):
    path = tmp_path / "g.onnx"
    with pytest.raises(ExportError, match="parity failed"):
        export_generator(small_generator, path, ExportConfig(parity_tolerance=0.0,
                                                             parity_samples=256))
    assert not path.exists()


def test_int8_decision_rule():
    base = {"fd_ratio": 1.0, "conditional_accuracy_ratio": 1.0, "diversity_ratio": 0.8}
    keys = tuple(base)
    ok, reasons = decide_int8(base, {**base, "fd_ratio": 1.04}, 1.5, keys)
    assert ok and reasons == []
    slow, reasons = decide_int8(base, base, 1.1, keys)
    assert not slow and "below the 1.3x needed" in reasons[0]
    worse, reasons = decide_int8(base, {**base, "fd_ratio": 1.2}, 2.0, keys)
    assert not worse and "fd_ratio moves 20.0%" in reasons[0]
