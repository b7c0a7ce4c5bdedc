"""config.pbtxt, the backend model, the ONNX graph and a real Triton all use genline.contract's
names: tensors, the warmup marker, the model name and the files of a version directory."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import tritonclient.grpc as grpcclient

from genline import contract
from genline.client import infer_inputs
from genline.serving import backend_model, store
from genline.serving import repository as repo_mod
from genline.serving.config import parse_config

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
GENERATOR_INPUTS = {contract.INPUT_LABEL, contract.INPUT_Z}


def test_committed_config_uses_the_contract_names():
    path = ROOT / "triton_repo" / contract.MODEL_NAME / "config.pbtxt"
    config = parse_config(path)
    assert config.name == contract.MODEL_NAME
    assert {i.name for i in config.input} == GENERATOR_INPUTS | {contract.WARMUP_INPUT}
    assert [o.name for o in config.output] == [contract.OUTPUT_IMAGE]
    (warmup,) = config.model_warmup
    assert set(warmup.inputs) == GENERATOR_INPUTS | {contract.WARMUP_INPUT}


def test_backend_model_uses_the_contract_names():
    assert (backend_model.LABEL, backend_model.Z, backend_model.IMAGE) == (
        contract.INPUT_LABEL,
        contract.INPUT_Z,
        contract.OUTPUT_IMAGE,
    )
    assert backend_model.WARMUP == contract.WARMUP_INPUT
    assert backend_model.SERVING_META == contract.SERVING_META
    assert backend_model.DEADLINE_PARAM == contract.DEADLINE_PARAM


def test_published_version_onnx_and_server_agree_with_the_contract(triton, published, grpc_client):
    vdir = repo_mod.model_dir(triton.repo, contract.MODEL_NAME) / str(published)
    for name in (contract.ONNX_FP32, contract.SERVING_META, contract.BACKEND_MODEL):
        assert (vdir / name).is_file(), name
    graph = onnx.load(str(vdir / contract.ONNX_FP32)).graph
    assert {i.name for i in graph.input} == GENERATOR_INPUTS
    assert [o.name for o in graph.output] == [contract.OUTPUT_IMAGE]
    meta = grpc_client.get_model_metadata(contract.MODEL_NAME, as_json=True)
    assert {i["name"] for i in meta["inputs"]} == GENERATOR_INPUTS | {contract.WARMUP_INPUT}
    assert [o["name"] for o in meta["outputs"]] == [contract.OUTPUT_IMAGE]


def test_the_running_backend_honours_the_warmup_marker(triton, published, grpc_client):
    """A request carrying contract.WARMUP_INPUT is served but never logged; one without is."""
    z = np.random.default_rng(0).standard_normal((1, 64)).astype(np.float32)
    since = time.time()
    for rid, warm in (("contract-warm", True), ("contract-plain", False)):
        inputs = infer_inputs(np.array([2]), z)
        if warm:
            marker = grpcclient.InferInput(contract.WARMUP_INPUT, [1, 1], "BOOL")
            marker.set_data_from_numpy(np.zeros((1, 1), bool))
            inputs.append(marker)
        res = grpc_client.infer(contract.MODEL_NAME, inputs, request_id=rid)
        assert res.as_numpy(contract.OUTPUT_IMAGE).shape[0] == 1
    df = store.read_predictions(triton.cfg.resolved_predlog_dir(), since=since)
    assert "contract-plain" in set(df.request_id)
    assert "contract-warm" not in set(df.request_id)
