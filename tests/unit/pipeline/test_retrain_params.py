"""The retraining parameters: trigger parsing, warm-start resolution, and their wiring in the IR."""

from __future__ import annotations

import json

import pytest
import yaml
from kfp import dsl

from components import steps
from genline.retrain import parse_trigger, warm_start_dir
from genline.serving.registry import Registry
from pipelines.training_pipeline import TARGETS, compiled_path


def test_trigger_parsing():
    assert parse_trigger("") == {"kind": "manual"}
    assert parse_trigger('{"kind": "manual"}') == {"kind": "manual"}
    drift = {"kind": "drift", "window_key": "2026-12-01-10:00", "model": "m", "version": 3,
             "report": "r.html", "scores": {"emb_0": 0.3}}
    assert parse_trigger(json.dumps(drift)) == drift
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_trigger("{kind: drift")
    with pytest.raises(ValueError, match="JSON object"):
        parse_trigger("[1]")
    with pytest.raises(ValueError, match="kind must be one of"):
        parse_trigger('{"kind": "cron"}')
    with pytest.raises(ValueError, match=r"needs \['window_key'\]"):
        parse_trigger('{"kind": "drift", "model": "m", "version": 1}')


def test_warm_start_resolves_the_serving_version(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLINE_HOME", str(tmp_path))
    repo, model_dir = tmp_path / "repo", tmp_path / "published"
    model_dir.mkdir()
    assert warm_start_dir(str(repo), "") is None
    with pytest.raises(ValueError, match="nothing to warm-start from"):
        warm_start_dir(str(repo), "serving")
    Registry().record(repo, "genline_generator", "published", 1, serving=1, state="serving",
                      lineage={"model_dir": str(model_dir)})
    assert warm_start_dir(str(repo), "serving") == str(model_dir)
    assert warm_start_dir(str(repo), "1") == str(model_dir)
    with pytest.raises(ValueError, match="never published"):
        warm_start_dir(str(repo), "4")


def test_publish_refuses_a_malformed_trigger_before_publishing(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLINE_HOME", str(tmp_path))
    with pytest.raises(ValueError, match="trigger is not valid JSON"):
        steps.publish_model.python_func(
            onnx_model=dsl.Model(name="m", uri=str(tmp_path / "m"), metadata={}),
            model_repository=str(tmp_path / "repo"), triton_url="127.0.0.1:1",
            trigger="{oops")
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("target", TARGETS)
def test_retrain_parameters_reach_their_steps(target):
    spec = yaml.safe_load(compiled_path(target).read_text())
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["init_from"]["defaultValue"] == ""
    assert json.loads(params["trigger"]["defaultValue"]) == {"kind": "manual"}
    assert params["dagster_run_id"]["defaultValue"] == ""
    tasks = dict(spec["root"]["dag"]["tasks"])
    for comp in spec["components"].values():
        tasks.update(comp.get("dag", {}).get("tasks", {}))

    def fed(task, name):
        return tasks[task]["inputs"]["parameters"][name]["componentInputParameter"]

    assert fed("train-generator", "init_from").endswith("init_from")
    assert fed("publish-model", "trigger").endswith("trigger")
    assert fed("publish-model", "dagster_run_id").endswith("dagster_run_id")


def test_finetune_takes_the_checkpoints_architecture_and_others_must_match(digits_small,
                                                                           tmp_path):
    from genline.model import load_generator
    from genline.train import preset, train

    base = tmp_path / "base"
    train(digits_small, preset("ci", hidden=32, depth=1, iterations=2, eval_every=1), base,
          progress=False)
    tuned = train(digits_small, preset("finetune", iterations=2, eval_every=1),
                  tmp_path / "tuned", init_from=base, progress=False)
    model, ckpt = load_generator(tuned.checkpoint)
    assert (model.cfg.hidden, model.cfg.depth) == (32, 1)
    assert ckpt["train"]["init_from"] == str(base)
    with pytest.raises(ValueError, match=r"architecture differs from the preset's: depth 1 "
                                         r"\(preset: 2\), hidden 32 \(preset: 256\).*'finetune'"):
        train(digits_small, preset("ci", iterations=2), tmp_path / "x", init_from=base,
              progress=False)
    with pytest.raises(ValueError, match="fine-tunes a trained model: give init_from"):
        train(digits_small, preset("finetune", iterations=2), tmp_path / "y", progress=False)


@pytest.fixture()
def digits_small():
    from genline.data import load_builtin

    return load_builtin()
