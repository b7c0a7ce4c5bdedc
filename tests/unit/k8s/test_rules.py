"""The serving alert rules in k8s/base/monitoring, checked by `promtool test rules`.

Each alerting rule has one case that fires and one that does not, on series shaped like
Triton's metrics (counters sampled every minute). The rules are taken from the PrometheusRule's
`spec` (the Operator's CRD wraps a plain Prometheus rule file), so what is tested is what ships.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
RULE_FILE = ROOT / "k8s" / "base" / "monitoring" / "prometheusrule.yaml"
INSTALL_HINT = "promtool is not installed: `sudo apt-get install -y prometheus` (Debian/Ubuntu)"
M = 'model="genline_generator"'
POD0 = f'{M}, pod="triton-0"'


def _rules() -> dict:
    return yaml.safe_load(RULE_FILE.read_text())["spec"]


def _alert(name: str) -> dict:
    for group in _rules()["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                return rule
    raise AssertionError(f"no alert {name} in {RULE_FILE}")


def _counter(name: str, labels: str, per_minute: float, minutes: int = 30) -> dict:
    return {"series": f"{name}{{{labels}}}", "values": f"0+{per_minute:g}x{minutes}"}


def _expect(name: str, annotations: dict, eval_time: str, **labels: str) -> dict:
    rule = _alert(name)
    return {
        "eval_time": eval_time,
        "alertname": name,
        "exp_alerts": [
            {
                "exp_labels": {**rule["labels"], **labels},
                "exp_annotations": {**rule["annotations"], **annotations},
            }
        ],
    }


def _silent(name: str, eval_time: str) -> dict:
    return {"eval_time": eval_time, "alertname": name, "exp_alerts": []}


# (alert, series that fire it, expectation, series that do not)
CASES = {
    "GenlineTritonDown": (
        [{"series": 'up{namespace="genline", pod="triton-0", job="triton"}', "values": "0x10"}],
        lambda: _expect("GenlineTritonDown", {}, "5m"),
        [{"series": 'up{namespace="genline", pod="triton-0", job="triton"}', "values": "1x10"}],
    ),
    "GenlineTritonModelNotReady": (
        [
            {"series": f'nv_model_inference_count{{{M}, pod="triton-1"}}', "values": "0x10"},
            _counter("nv_inference_request_success", POD0, 10),
        ],
        lambda: _expect(
            "GenlineTritonModelNotReady",
            {"description": "Pod triton-1 exports no success counter for genline_generator."},
            "8m",
            pod="triton-1",
        ),
        [
            {"series": f"nv_model_inference_count{{{POD0}}}", "values": "0x10"},
            _counter("nv_inference_request_success", POD0, 10),
        ],
    ),
    "GenlineInferenceErrorRate": (
        [
            _counter("nv_inference_request_success", POD0, 95),
            _counter("nv_inference_request_failure", POD0, 5),
        ],
        lambda: _expect(
            "GenlineInferenceErrorRate",
            {"description": "Failure ratio over 5 minutes is 5%."},
            "15m",
        ),
        [
            _counter("nv_inference_request_success", POD0, 1000),
            _counter("nv_inference_request_failure", POD0, 1),  # 0.1%: below 1%
        ],
    ),
    "GenlineInferenceLatencyHigh": (
        [
            _counter("nv_inference_request_success", POD0, 100),
            _counter("nv_inference_request_duration_us", POD0, 6_000_000),  # 60 ms each
        ],
        lambda: _expect(
            "GenlineInferenceLatencyHigh",
            {"description": "Average end-to-end request latency is 60000 us over 5 minutes."},
            "20m",
        ),
        [
            _counter("nv_inference_request_success", POD0, 100),
            _counter("nv_inference_request_duration_us", POD0, 1_000_000),  # 10 ms each
        ],
    ),
    "GenlineInferenceQueueing": (
        [
            _counter("nv_inference_request_success", POD0, 100),
            _counter("nv_inference_queue_duration_us", POD0, 3_000_000),  # 30 ms in queue
        ],
        lambda: _expect("GenlineInferenceQueueing", {}, "20m"),
        [
            _counter("nv_inference_request_success", POD0, 100),
            _counter("nv_inference_queue_duration_us", POD0, 100_000),  # 1 ms
        ],
    ),
}


def _promtool(tmp_path: Path, tests: list[dict]) -> subprocess.CompletedProcess:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip(INSTALL_HINT)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_rules()))
    spec = {"rule_files": ["rules.yaml"], "evaluation_interval": "30s", "tests": tests}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return subprocess.run(
        [exe, "test", "rules", "tests.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_alert_has_a_case_and_a_runbook():
    names = {r["alert"] for g in _rules()["groups"] for r in g["rules"] if "alert" in r}
    assert names == set(CASES)
    doc = (ROOT / "docs" / "alerting.md").read_text()
    for name in names:
        url = _alert(name)["annotations"]["runbook_url"]
        assert url == f"docs/alerting.md#{name.lower()}"
        assert f"### {name}" in doc, f"docs/alerting.md has no runbook section for {name}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_rule_fires_on_its_condition(tmp_path, name):
    firing, expect, _ = CASES[name]
    out = _promtool(
        tmp_path, [{"interval": "1m", "input_series": firing, "alert_rule_test": [expect()]}]
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("name", sorted(CASES))
def test_rule_stays_silent_otherwise(tmp_path, name):
    _, expect, quiet = CASES[name]
    eval_time = expect()["eval_time"]
    out = _promtool(
        tmp_path,
        [{"interval": "1m", "input_series": quiet, "alert_rule_test": [_silent(name, eval_time)]}],
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_would_catch_a_wrong_expectation(tmp_path):
    """The harness itself: expecting an alert from the quiet series must fail."""
    _, expect, quiet = CASES["GenlineInferenceErrorRate"]
    out = _promtool(
        tmp_path, [{"interval": "1m", "input_series": quiet, "alert_rule_test": [expect()]}]
    )
    assert out.returncode != 0
