"""Where genline keeps its state. Read at call time, never at import time."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """The state directory: `$GENLINE_HOME`, else `.genline/` under the current directory.

    Returns:
        The path (not created here; callers create what they write).
    """
    env = os.environ.get("GENLINE_HOME")
    return Path(env).expanduser().resolve() if env else (Path.cwd() / ".genline").resolve()


def alerts_dir() -> Path:
    return state_dir() / "alerts"


def models_dir() -> Path:
    return state_dir() / "models"


def run_dir() -> Path:
    """Pid files and logs of background services (Triton, Dagster UI)."""
    return state_dir() / "run"
