"""Dagster definitions by concept. Every module here is loaded by `definitions.py`:

its module-level assets, asset checks, jobs, schedules and sensors are picked up automatically, and
a module-level `RESOURCES` dict (resource key -> resource) is merged into the location's resources.
"""
