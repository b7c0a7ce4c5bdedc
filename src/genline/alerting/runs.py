"""The identity of a failing run, shared by every path that can report the failure.

A pipeline failure can be seen twice: by the kfp exit handler (inside the pipeline) and by the
Dagster run-failure sensor (around it). Both key the alert by the run that owns the failure, so
they are one incident: the Dagster asset that launches the pipeline sets `GENLINE_ALERT_RUN`
to `dagster:<run id>` for the pipeline's step subprocesses (`run_context`), the exit handler
reads it (`current_run`), and the sensor derives the same subject from the run it sees
(`dagster_subject`). A pipeline launched without Dagster (`genline pipeline run`) has no such
owner; its exit handler's alert is then its own incident.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

RUN_ENV = "GENLINE_ALERT_RUN"


def dagster_subject(run_id: str) -> str:
    """The incident subject of a failure of Dagster run `run_id`."""
    return f"dagster:{run_id}"


def current_run() -> str | None:
    """The run that owns failures raised in this process ($GENLINE_ALERT_RUN), if any."""
    return os.environ.get(RUN_ENV) or None


@contextmanager
def run_context(subject: str) -> Iterator[str]:
    """Set $GENLINE_ALERT_RUN for the block (subprocesses started inside inherit it)."""
    previous = os.environ.get(RUN_ENV)
    os.environ[RUN_ENV] = subject
    try:
        yield subject
    finally:
        if previous is None:
            os.environ.pop(RUN_ENV, None)
        else:
            os.environ[RUN_ENV] = previous
