"""Dagster definitions by concept, loaded by `dg.load_from_defs_folder` (see `definitions.py`).

Module-level assets, asset checks, jobs, schedules and sensors are picked up automatically;
resources come from `@dg.definitions` functions returning `dg.Definitions(resources=...)`.
"""
