"""The committed Triton configs: generated, parseable, and consistent with the ONNX graph."""

from __future__ import annotations

from pathlib import Path

import onnx_fixture
import pytest

from genline import contract
from genline.serving import config as cfgmod

ROOT = Path(__file__).resolve().parents[3]
MODEL_DIR = ROOT / "triton_repo" / contract.MODEL_NAME


def test_committed_configs_are_what_the_generator_renders():
    assert (MODEL_DIR / "config.pbtxt").read_text() == cfgmod.render_cpu_config()
    assert (MODEL_DIR / "configs" / "gpu.pbtxt").read_text() == cfgmod.render_gpu_config()


@pytest.fixture(scope="module")
def fixture_onnx(tmp_path_factory):
    return onnx_fixture.make_model_dir(tmp_path_factory.mktemp("m")) / contract.ONNX_FP32


def test_every_committed_config_matches_the_onnx_contract(fixture_onnx):
    paths = sorted((ROOT / "triton_repo").rglob("*.pbtxt"))
    assert len(paths) >= 2
    for path in paths:
        config = cfgmod.parse_config(path)
        assert cfgmod.check_config_against_onnx(config, fixture_onnx) == [], path


def test_cpu_config_details():
    c = cfgmod.build_cpu_config()
    assert c.backend == "python" and c.max_batch_size >= 32
    assert c.version_policy.latest.num_versions == 2
    assert c.HasField("dynamic_batching")
    assert c.parameters["ort_allow_spinning"].string_value == "0"
    assert [i.name for i in c.input] == [
        contract.INPUT_LABEL,
        contract.INPUT_Z,
        cfgmod.WARMUP_INPUT,
    ]
    assert list(c.input[0].dims) == [1] and c.input[0].HasField("reshape")
    assert c.input[2].optional and not c.input[0].optional and not c.input[1].optional
    (warm,) = c.model_warmup
    assert set(warm.inputs) == {contract.INPUT_LABEL, contract.INPUT_Z, cfgmod.WARMUP_INPUT}


def test_gpu_config_uses_tensorrt_fp16_on_the_onnxruntime_backend():
    c = cfgmod.build_gpu_config()
    assert c.backend == "onnxruntime" and c.default_model_filename == contract.ONNX_FP32
    trt = c.optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert trt.name == "tensorrt" and trt.parameters["precision_mode"] == "FP16"
    assert c.instance_group[0].kind == c.instance_group[0].KIND_GPU
    assert {w.batch_size for w in c.model_warmup} == {1, c.max_batch_size}


def test_mismatches_are_reported(fixture_onnx):
    c = cfgmod.build_cpu_config(cfgmod.ModelShape(latent_dim=32))
    problems = cfgmod.check_config_against_onnx(c, fixture_onnx)
    assert any("'z'" in p and "shape" in p for p in problems)
    c = cfgmod.build_cpu_config()
    c.input[0].data_type = c.input[0].data_type + 1
    assert any("dtype" in p for p in cfgmod.check_config_against_onnx(c, fixture_onnx))
    c = cfgmod.build_cpu_config()
    c.output[0].name = "pixels"
    problems = cfgmod.check_config_against_onnx(c, fixture_onnx)
    assert any("missing" in p for p in problems) and any("'pixels'" in p for p in problems)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(instances=0),
        dict(max_batch_size=0),
        dict(max_queue_delay_us=-1),
        dict(ort_intra_op_threads=0),
        dict(versions_kept=0),
    ],
)
def test_bad_tuning_is_refused(kwargs):
    with pytest.raises(ValueError):
        cfgmod.build_cpu_config(tuning=cfgmod.CpuTuning(**kwargs))


def test_malformed_config_names_the_file(tmp_path):
    bad = tmp_path / "config.pbtxt"
    bad.write_text('name: "x"\nmax_batch_size: [oops\n')
    with pytest.raises(ValueError, match="config.pbtxt"):
        cfgmod.parse_config(bad)


def test_write_configs_round_trip(tmp_path):
    paths = cfgmod.write_configs(tmp_path, cfgmod.ModelShape(latent_dim=16, image_shape=(3, 4, 4)))
    cpu = cfgmod.parse_config(paths[0])
    assert list(cpu.input[1].dims) == [16] and list(cpu.output[0].dims) == [3, 4, 4]
