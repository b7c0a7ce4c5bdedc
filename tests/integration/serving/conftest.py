"""A real Triton Inference Server for the serving tests, on free loopback ports.

Session-scoped: one server, one repository copy (the committed config.pbtxt) and one trained
model shared by every test. The model is the `ci` preset trained once and cached under the
pytest cache, keyed on the hash of the training sources (set GENLINE_SERVING_TEST_MODEL=fixture
to use the small onnx.helper graph instead, e.g. while iterating on serving code).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "unit" / "serving"))

import onnx_fixture  # noqa: E402

from genline import contract  # noqa: E402
from genline.netutil import free_port  # noqa: E402
from genline.serving import server as srv  # noqa: E402
from genline.serving.publish import Target  # noqa: E402


@dataclass
class Served:
    cfg: srv.ServerConfig
    target: Target
    repo: Path
    home: Path
    handle: srv.ServerHandle | None = None


def make_repo(path: Path) -> Path:
    """A repository holding a copy of the committed config (no versions)."""
    src = ROOT / "triton_repo" / contract.MODEL_NAME
    dest = path / contract.MODEL_NAME
    dest.mkdir(parents=True)
    shutil.copy(src / "config.pbtxt", dest / "config.pbtxt")
    shutil.copytree(src / "configs", dest / "configs")
    return path


def make_served(base: Path) -> Served:
    home = base / "home"
    repo = make_repo(base / "repo")
    ports = set()
    while len(ports) < 3:
        ports.add(free_port())
    http, grpc, metrics = sorted(ports)
    cfg = srv.ServerConfig(
        repository=repo,
        http_port=http,
        grpc_port=grpc,
        metrics_port=metrics,
        run_dir=home / "run",
        predlog_dir=home / "predictions",
    )
    target = Target(
        repository=repo,
        url=cfg.grpc_url,
        run_dir=home / "run",
        registry_path=home / "serving" / "registry.json",
        profile_dir=home / "serving" / "profiles",
        alert_dir=home / "alerts",
    )
    return Served(cfg=cfg, target=target, repo=repo, home=home)


@pytest.fixture(scope="session")
def model_dir(request, tmp_path_factory) -> Path:
    """A gated model directory: the ci preset shared by all areas (tests/conftest.py)."""
    if os.environ.get("GENLINE_SERVING_TEST_MODEL") == "fixture":
        return onnx_fixture.make_model_dir(tmp_path_factory.mktemp("fixture_model"))
    return request.getfixturevalue("ci_model_dir")


@pytest.fixture(scope="session")
def triton(tmp_path_factory):
    """The session's Triton: started on free loopback ports, stopped at the end.

    Every path (run dir, prediction log, registry, profiles, alerts) is explicit and under a
    temp dir, so nothing leaks into other tests through GENLINE_HOME.
    """
    served = make_served(tmp_path_factory.mktemp("triton"))
    served.handle = srv.start(served.cfg)
    yield served
    srv.stop(served.cfg.resolved_run_dir())


@pytest.fixture(scope="session")
def published(triton, model_dir) -> int:
    """The trained model published once; returns its version."""
    from genline.serving.publish import publish

    return publish(model_dir, triton.target).version


@pytest.fixture
def served_factory():
    """make_served, for tests that need a server of their own."""
    return make_served


@pytest.fixture
def grpc_client(triton):
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(triton.cfg.grpc_url)
    yield client
    client.close()
