"""The code location: whatever the modules of `dagster_project/defs/` define, loaded automatically.

A new module in defs/ (e.g. the training pipeline's `training.py`) joins the location without an
edit here: its assets, checks, jobs, schedules and sensors are found at module scope, and its
`RESOURCES` dict is merged into the resources.
"""

from __future__ import annotations

import importlib
import pkgutil
import warnings
from types import ModuleType

import dagster as dg

from dagster_project import defs as defs_package


def defs_modules() -> list[ModuleType]:
    """Every module under dagster_project/defs/, in name order."""
    return [
        importlib.import_module(info.name)
        for info in sorted(
            pkgutil.walk_packages(defs_package.__path__, f"{defs_package.__name__}."),
            key=lambda i: i.name,
        )
    ]


def build_definitions() -> dg.Definitions:
    modules = defs_modules()
    resources: dict = {}
    for module in modules:
        for key, resource in getattr(module, "RESOURCES", {}).items():
            if key in resources and resources[key] is not resource:
                raise dg.DagsterInvalidDefinitionError(
                    f"resource key {key!r} is defined by two modules in dagster_project/defs/"
                )
            resources[key] = resource
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=dg.PreviewWarning)
        return dg.load_definitions_from_modules(
            modules, resources=resources, executor=dg.in_process_executor
        )


defs = build_definitions()
