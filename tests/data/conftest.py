"""Fixtures for the data-layer tests: small real datasets and a state directory per test."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from genline.data import Dataset, load_builtin


@functools.lru_cache(maxsize=1)
def _builtin() -> Dataset:
    return load_builtin()


@pytest.fixture()
def digits() -> Dataset:
    """The built-in UCI digits (1,797 images, 8x8, 10 classes)."""
    return _builtin()


@pytest.fixture()
def batch(digits: Dataset) -> Dataset:
    """A balanced 200-image batch of real digits."""
    idx = np.concatenate([np.flatnonzero(digits.labels == k)[:20] for k in range(10)])
    return digits.subset(idx, "test-batch")


@pytest.fixture()
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh genline state directory ($GENLINE_HOME)."""
    home = tmp_path / "state"
    monkeypatch.setenv("GENLINE_HOME", str(home))
    return home


class _ReadOnlyHTTP:
    """A real HTTP server that serves files but refuses uploads: a read-only DVC remote."""

    def __init__(self, root: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/remote"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output clean
        pass


@pytest.fixture()
def read_only_http_remote(tmp_path: Path):
    root = tmp_path / "http_root"
    root.mkdir()
    srv = _ReadOnlyHTTP(root)
    yield srv.url
    srv.close()
