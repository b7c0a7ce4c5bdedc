"""CLI commands of this area (registered by genline.cli)."""

COMMANDS: list = []
