"""genline's Dagster code location (load it with `dagster dev -m dagster_project.definitions`)."""
