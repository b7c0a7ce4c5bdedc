"""`genline lineage VERSION`: where a published version came from and what it has served.

A thin adapter over genline.lineage_report (imported inside the command).
"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("lineage")
@click.argument("version", type=int)
@click.option("--model", default=None, help="Served model name (default: genline_generator).")
@click.option("--json", "as_json", is_flag=True, help="Print the lineage as JSON.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=None,
    help="Lineage records directory (default: $GENLINE_HOME/lineage).",
)
@click.option(
    "--predictions",
    "predictions_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Prediction-log directory (default: $GENLINE_PREDLOG_DIR or $GENLINE_HOME/predictions).",
)
def lineage_cmd(
    version: int,
    model: str | None,
    as_json: bool,
    directory: Path | None,
    predictions_dir: Path | None,
) -> None:
    """Data version -> batches -> Dagster run -> Kubeflow run -> checkpoint -> ONNX -> Triton
    version -> trigger, as recorded when VERSION was published, then the prediction-log
    partitions it served and the drift reports about it (both read live, now)."""
    from genline.lineage_record import LineageError
    from genline.lineage_report import format_table, lineage_report
    from genline.serving.repository import RepositoryError

    try:
        report = lineage_report(
            version, model, directory=directory, predictions_dir=predictions_dir
        )
    except (LineageError, RepositoryError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=False, default=str))
    else:
        click.echo(format_table(report))


COMMANDS = [lineage_cmd]
