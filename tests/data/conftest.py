"""Fixtures for the data-layer tests: small real datasets and a state directory per test."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from genline.data import Dataset, load_builtin
from tests.data.remotes import read_only_http_remote  # noqa: F401  (a fixture)


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


# The clock every data test runs at unless it pins another: the default simulated window is then
# 2026-11-01..2026-11-28, the dates the tests use. No test depends on the wall clock.
PINNED_NOW = "2026-11-29T12:00:00Z"


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch: pytest.MonkeyPatch) -> str:
    """Pin genline.clock (GENLINE_NOW, so subprocesses see it too)."""
    from genline import clock

    monkeypatch.setenv(clock.ENV, PINNED_NOW)
    return PINNED_NOW


@pytest.fixture()
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh genline state directory ($GENLINE_HOME)."""
    home = tmp_path / "state"
    monkeypatch.setenv("GENLINE_HOME", str(home))
    return home
