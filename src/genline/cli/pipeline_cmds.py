"""`genline pipeline run|compile`: the Kubeflow training pipeline from the command line.

kfp and the pipeline package are imported inside the commands (genline itself never imports kfp).
"""

from __future__ import annotations

import json
import sys

import click

EXIT_PIPELINE_FAILED = 1
EXIT_GATE_FAILED = 3


@click.group("pipeline")
def pipeline() -> None:
    """The Kubeflow training pipeline: run it (locally or on $KFP_HOST) or compile it."""


@pipeline.command("run")
@click.option("--dataset-version", default="", help="DVC md5 (or 'latest') of training_dataset.")
@click.option("--dvc-repo", default="", help="The git + DVC repository of the versions.")
@click.option(
    "--data",
    "dataset_uri",
    default="",
    help="An .npz or image folder when no version is given (default: built-in digits).",
)
@click.option("--preset", default=None, help="Training preset (ci, default).")
@click.option("--iterations", type=int, default=None,
              help="Optimizer steps (default: the preset's).")
@click.option("--world-size", type=int, default=None, help="Data-parallel training processes.")
@click.option(
    "--champion-version",
    default=None,
    help="'serving', a published version number, or '' for no champion.",
)
@click.option("--target", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True)
@click.option("--publish/--no-publish", default=None, help="Publish to Triton if the gate passes.")
@click.option("--model-repository", default=None, help="Triton model repository to publish to.")
@click.option("--triton-url", default=None, help="Triton gRPC address to load the model on.")
@click.option("--int8/--no-int8", "try_int8", default=None, help="Measure the INT8 variant.")
@click.option("--distill/--no-distill", default=None,
              help="Distil a gated teacher into a 2-step student (default on).")
@click.option(
    "--host",
    default=None,
    envvar="KFP_HOST",
    help="Kubeflow Pipelines endpoint; default $KFP_HOST; unset = run locally.",
)
@click.option(
    "--wait",
    "wait_s",
    type=float,
    default=None,
    help="On a cluster: wait this many seconds for the run to finish.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
def run_cmd(
    dataset_version,
    dvc_repo,
    dataset_uri,
    preset,
    iterations,
    world_size,
    champion_version,
    target,
    publish,
    model_repository,
    triton_url,
    try_int8,
    distill,
    host,
    wait_s,
    as_json,
) -> None:
    """Run the training pipeline and print what it produced.

    Exit status: 0 when the run succeeded (or was submitted to a cluster) and the gate passed,
    3 when it succeeded but the gate failed, 1 when a step failed.
    """
    from pipelines.run import PipelineError, run_local, submit_to_cluster

    given = {
        "dataset_version": dataset_version,
        "dvc_repo": dvc_repo,
        "dataset_uri": dataset_uri,
        "preset": preset,
        "iterations": iterations,
        "world_size": world_size,
        "champion_version": champion_version,
        "target": target,
        "publish": publish,
        "model_repository": model_repository,
        "triton_url": triton_url,
        "try_int8": try_int8,
        "distill": distill,
    }
    params = {k: v for k, v in given.items() if v not in (None, "")}
    try:
        if host:
            result = submit_to_cluster(params, host, target, wait_s=wait_s)
        else:
            result = run_local(params, target)
    except PipelineError as exc:
        raise click.ClickException(str(exc)) from exc
    summary = result.summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
    else:
        _print_summary(summary, result.samples_png)
    if result.mode == "local":
        if result.state != "SUCCEEDED":
            sys.exit(EXIT_PIPELINE_FAILED)
        if result.gate_passed is False:
            sys.exit(EXIT_GATE_FAILED)


def _print_summary(s: dict, samples) -> None:
    click.echo(f"pipeline run {s['run_id']} ({s['mode']}): {s['state']}")
    if s.get("url"):
        click.echo(f"  url: {s['url']}")
    if s.get("run_dir"):
        click.echo(f"  outputs: {s['run_dir']}")
    if s.get("gate_passed") is not None:
        verdict = "passed" if s["gate_passed"] else f"FAILED ({s.get('gate_reasons')})"
        click.echo(f"  gate: {verdict}")
    for key in ("fd_ratio", "conditional_accuracy", "evaluator_accuracy", "diversity_ratio"):
        if key in s.get("metrics", {}):
            click.echo(f"  {key:22s} {s['metrics'][key]:.4f}")
    if s.get("model_dir"):
        click.echo(f"  model: {s['model_dir']}")
    if samples:
        click.echo(f"  samples: {samples}")
    if s.get("published_version") is not None:
        click.echo(f"  published version: {s['published_version']}")


@pipeline.command("compile")
@click.option(
    "--check",
    is_flag=True,
    help="Only check that the committed IR YAML is what the code compiles to.",
)
def compile_cmd(check: bool) -> None:
    """Compile the pipeline (cpu and gpu variants) to pipelines/compiled/*.yaml."""
    import tempfile
    from pathlib import Path

    from pipelines.training_pipeline import TARGETS, compile_pipeline, compiled_path

    stale = []
    for target in TARGETS:
        if check:
            with tempfile.TemporaryDirectory() as tmp:
                fresh = compile_pipeline(target, Path(tmp) / "p.yaml").read_bytes()
            committed = compiled_path(target)
            if not committed.is_file() or committed.read_bytes() != fresh:
                stale.append(str(committed))
        else:
            click.echo(compile_pipeline(target))
    if stale:
        raise click.ClickException(
            f"out of date: {', '.join(stale)}; run `genline pipeline compile` and commit"
        )


COMMANDS = [pipeline]
