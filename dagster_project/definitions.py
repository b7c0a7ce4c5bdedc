"""The code location: everything under `dagster_project/defs/`, found by Dagster's own loader.

`dg.load_from_defs_folder` reads `dagster_project/dg.toml` and loads every module of `defs/`:
module-level assets, checks, jobs, schedules and sensors, and the `dg.Definitions` returned by
its `@dg.definitions` functions (resources, the executor). A new module joins without an edit here.
"""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    """The location's definitions (built when called, never at import)."""
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
