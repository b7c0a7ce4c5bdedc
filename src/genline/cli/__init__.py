"""The `genline` command line. Each area registers its commands from its own module.

Modules here import only click at import time; heavy libraries (torch, tritonclient, dvc) are
imported inside the command bodies so `genline --help` stays fast.
"""

from __future__ import annotations

import importlib

import click

# Each module exposes COMMANDS: a list of click commands or groups.
_COMMAND_MODULES = (
    "genline.cli.model_cmds",  # train, evaluate, export, sample
    "genline.cli.serve_cmds",  # serve, publish, rollback, generate
    "genline.cli.data_cmds",  # data ...
    "genline.cli.ui_cmds",  # ui
    "genline.cli.pipeline_cmds",  # pipeline ...
    "genline.cli.alert_cmds",  # alerts list, resolve, test, flush
    "genline.cli.lineage_cmds",  # lineage VERSION
    "genline.cli.demo_cmds",  # demo: the full loop with its timeline
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="genline")
def cli() -> None:
    """genline: versioned data -> training with a quality gate -> ONNX -> Triton -> monitoring."""


for _name in _COMMAND_MODULES:
    for _command in importlib.import_module(_name).COMMANDS:
        cli.add_command(_command)


def main() -> None:
    cli()
