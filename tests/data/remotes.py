"""A real read-only DVC remote: an HTTP server that serves files but refuses uploads."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest


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
