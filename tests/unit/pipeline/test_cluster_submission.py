"""Submitting to a Kubeflow Pipelines cluster, against the KFP v2beta1 REST API's wire format.

No cluster exists here. A small HTTP server answers the endpoints the real `kfp.Client` calls
(healthz, experiments, runs) with the documented JSON shapes and records every request, so the
test checks what genline actually sends (the committed IR and the run parameters) and that it
reports the run id, URL and state the server returned -- no run is pretended to have happened.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from pipelines.run import PipelineError, parameter_defaults, run_pipeline, submit_to_cluster
from pipelines.training_pipeline import compiled_path


class FakeKfp(BaseHTTPRequestHandler):
    requests: list[tuple[str, str, dict | None]] = []
    runs: dict[str, dict] = {}

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _reply(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        self.requests.append(("GET", url.path, parse_qs(url.query)))
        if url.path == "/apis/v2beta1/healthz":
            return self._reply(200, {"multi_user": False})
        if url.path == "/apis/v2beta1/experiments":
            return self._reply(200, {})  # no experiment with that name yet
        if url.path.startswith("/apis/v2beta1/runs/"):
            run = self.runs.get(url.path.rsplit("/", 1)[1])
            if run is None:
                return self._reply(404, {"error": "run not found", "code": 5})
            return self._reply(200, {**run, "state": "SUCCEEDED"})
        return self._reply(404, {"error": f"no route {url.path}", "code": 5})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append(("POST", self.path, body))
        if self.path == "/apis/v2beta1/experiments":
            return self._reply(200, {"experiment_id": "exp-1", **body})
        if self.path == "/apis/v2beta1/runs":
            run = {
                **body,
                "run_id": "run-42",
                "state": "PENDING",
                "created_at": "2026-11-28T12:00:00Z",
            }
            self.runs["run-42"] = run
            return self._reply(200, run)
        return self._reply(404, {"error": f"no route {self.path}", "code": 5})


@pytest.fixture()
def kfp_host(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/kfp/context.json of the user
    FakeKfp.requests, FakeKfp.runs = [], {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeKfp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def as_sent(package) -> dict:
    """The committed IR as it travels: via the PipelineSpec proto, with caching switched off on
    every root task (what `enable_caching=False` documents), as kfp.Client sends it."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec = json_format.ParseDict(
        yaml.safe_load(package.read_text()), pipeline_spec_pb2.PipelineSpec()
    )
    for task in spec.root.dag.tasks.values():
        task.caching_options.enable_cache = False
    return json_format.MessageToDict(spec)


def _posted(path: str) -> dict:
    (body,) = [b for method, p, b in FakeKfp.requests if method == "POST" and p == path]
    return body


def test_submission_sends_the_committed_ir_and_parameters(kfp_host):
    run = submit_to_cluster({"dataset_version": "a" * 32, "world_size": 2}, host=kfp_host)
    assert (run.mode, run.run_id, run.state) == ("cluster", "run-42", "PENDING")
    assert run.url == f"{kfp_host}/#/runs/details/run-42"
    assert _posted("/apis/v2beta1/experiments")["display_name"] == "genline"
    body = _posted("/apis/v2beta1/runs")
    assert body["experiment_id"] == "exp-1"
    assert body["pipeline_spec"] == as_sent(compiled_path("cpu"))
    sent = body["runtime_config"]["parameters"]
    assert sent["dataset_version"] == "a" * 32 and sent["world_size"] == 2
    assert set(sent) == set(parameter_defaults())  # every parameter explicit, defaults included
    assert run.tasks == {} and run.run_dir is None  # nothing local is claimed


def test_waiting_reports_the_state_the_server_gives(kfp_host):
    run = submit_to_cluster({}, host=kfp_host, target="gpu", wait_s=30)
    assert run.state == "SUCCEEDED"
    body = _posted("/apis/v2beta1/runs")
    assert body["pipeline_spec"]["pipelineInfo"]["name"] == "genline-training-gpu"
    assert ("GET", "/apis/v2beta1/runs/run-42", {}) in FakeKfp.requests


def test_kfp_host_env_selects_the_cluster(kfp_host, monkeypatch):
    monkeypatch.setenv("KFP_HOST", kfp_host)
    run = run_pipeline({"preset": "ci"})
    assert run.mode == "cluster" and run.run_id == "run-42"


def test_bad_parameters_are_refused_before_anything_is_sent(kfp_host):
    with pytest.raises(PipelineError, match="unknown pipeline parameter"):
        submit_to_cluster({"presets": "ci"}, host=kfp_host)
    with pytest.raises(PipelineError, match="world_size"):
        submit_to_cluster({"world_size": "2"}, host=kfp_host)
    with pytest.raises(PipelineError, match="world_size must be >= 1"):
        submit_to_cluster({"world_size": 0}, host=kfp_host)
    assert FakeKfp.requests == []


def test_a_server_error_is_a_clear_pipeline_error(kfp_host, monkeypatch):
    monkeypatch.setattr(FakeKfp, "runs", {})

    def refuse(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self._reply(403, {"error": "forbidden: no access to namespace kubeflow", "code": 7})

    monkeypatch.setattr(FakeKfp, "do_POST", refuse)
    with pytest.raises(PipelineError, match="403"):
        submit_to_cluster({}, host=kfp_host)
