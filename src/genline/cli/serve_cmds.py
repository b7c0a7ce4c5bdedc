"""CLI commands of the serving area: serve, publish, rollback, generate, predictions.

Thin adapters over genline.serving and genline.client; heavy imports inside command bodies.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

_DEFAULT_REPO = "triton_repo"


def _server_options(fn):
    opts = [
        click.option(
            "--repository",
            type=click.Path(path_type=Path),
            default=_DEFAULT_REPO,
            show_default=True,
            help="Triton model repository.",
        ),
        click.option(
            "--host",
            default=None,
            help="Address every endpoint binds to [default: 127.0.0.1, loopback; with --status: "
            "the running server's].",
        ),
        click.option(
            "--grpc-port",
            type=int,
            default=None,
            help="[default: 8001; with --status: the running server's]",
        ),
        click.option(
            "--http-port",
            type=int,
            default=None,
            help="[default: 8000; with --status: the running server's]",
        ),
        click.option(
            "--metrics-port",
            type=int,
            default=None,
            help="[default: 8002; with --status: the running server's]",
        ),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _server_config(
    repository,
    host,
    grpc_port,
    http_port,
    metrics_port,
    predlog_dir=None,
    model_config_name=None,
    recorded: dict | None = None,
):
    """The ServerConfig the options name; an option not given takes the `recorded` server's
    value (a pid-file record's config) when there is one, else ServerConfig's default."""
    from genline.serving.server import ServerConfig

    given = {
        "host": host,
        "grpc_port": grpc_port,
        "http_port": http_port,
        "metrics_port": metrics_port,
    }
    base = (recorded or {}).get("config") or {}
    fields = {
        k: v if v is not None else base.get(k, getattr(ServerConfig, k)) for k, v in given.items()
    }
    return ServerConfig(
        repository=repository,
        predlog_dir=predlog_dir,
        model_config_name=model_config_name,
        **fields,
    )


def _grpc_url(url: str | None) -> str:
    """--url when given, else the gRPC URL of the server this state dir runs, else the default."""
    if url:
        return url
    from genline.serving.server import default_grpc_url

    return default_grpc_url()


@click.command("serve")
@_server_options
@click.option(
    "--background",
    is_flag=True,
    help="Start, wait until ready, return (pid file "
    "under the run dir). Reuses a server this state dir already runs.",
)
@click.option("--stop", "stop_", is_flag=True, help="Stop the server started from this state dir.")
@click.option("--status", "status_", is_flag=True, help="Readiness and loaded versions.")
@click.option(
    "--predlog-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Prediction-log directory (default <state>/predictions).",
)
@click.option(
    "--model-config-name",
    default=None,
    help="Use <model>/configs/<name>.pbtxt (e.g. gpu) instead of config.pbtxt.",
)
@click.option(
    "--write-config",
    is_flag=True,
    help="Regenerate config.pbtxt and configs/gpu.pbtxt "
    "(shapes from --model DIR's export.json, else the built-in digits) and exit.",
)
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="With --write-config: take tensor shapes from this model dir.",
)
def serve(
    repository,
    host,
    grpc_port,
    http_port,
    metrics_port,
    background,
    stop_,
    status_,
    predlog_dir,
    model_config_name,
    write_config,
    model_dir,
):
    """Run a real Triton Inference Server on the model repository (gRPC for apps)."""
    from genline.serving import server as srv

    cfg = _server_config(
        repository, host, grpc_port, http_port, metrics_port, predlog_dir, model_config_name
    )
    if write_config:
        from genline.serving.config import ModelShape, write_configs

        shape = ModelShape()
        if model_dir is not None:
            from genline import contract
            from genline.fsutil import read_json

            rep = read_json(Path(model_dir) / contract.EXPORT_REPORT)
            shape = ModelShape(
                int(rep["latent_dim"]), tuple(rep["image_shape"]), int(rep["num_classes"])
            )
        for path in write_configs(repository, shape):
            click.echo(f"wrote {path}")
        return
    if stop_:
        from genline.serving import store

        info = srv.stop(cfg.resolved_run_dir())
        if info is None:
            click.echo("no Triton server is running from this state dir")
        else:
            click.echo(f"stopped Triton pid {info['pid']} ({info.get('grpc')})")
        stats = store.compact(cfg.resolved_predlog_dir())
        if stats["segments"]:
            click.echo(f"prediction log: compacted {stats['requests']} requests into Parquet")
        return
    if status_:
        recorded = srv.recorded_server(cfg.resolved_run_dir())
        cfg = _server_config(
            repository,
            host,
            grpc_port,
            http_port,
            metrics_port,
            predlog_dir,
            model_config_name,
            recorded=recorded,
        )
        st = srv.status(cfg)
        st.pop("repository_index", None)
        click.echo(json.dumps(st, indent=2))
        sys.exit(0 if st["ready"] else 1)
    try:
        if background:
            handle = srv.start(cfg)
            click.echo(handle.describe())
            return
        sys.exit(srv.run_foreground(cfg))
    except srv.ServerError as exc:
        raise click.ClickException(str(exc)) from exc


def _target(repository, grpc_url):
    from genline.serving.publish import Target

    return Target(repository=repository, url=grpc_url)


@click.command("publish")
@click.option(
    "--model",
    "model_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Model directory written by `genline train` (gate.json must have passed).",
)
@click.option(
    "--repository", type=click.Path(path_type=Path), default=_DEFAULT_REPO, show_default=True
)
@click.option(
    "--url",
    default=None,
    help="Triton gRPC host:port [default: the server this state dir runs, else 127.0.0.1:8001].",
)
@click.option(
    "--allow-class-change",
    is_flag=True,
    help="Publish even if the model's classes (names or count) differ from the serving version's.",
)
@click.option(
    "--allow-custom-gate",
    is_flag=True,
    help="Publish a model gated with bounds looser than the default gate's.",
)
def publish(model_dir, repository, url, allow_class_change, allow_custom_gate):
    """Publish a gated model so that it serves: stage, verify, rename, load, canary.

    Idempotent: if this ONNX already serves, nothing is created and its version is printed.
    """
    from genline.serving.publish import PublishError
    from genline.serving.publish import publish as do_publish

    try:
        res = do_publish(
            model_dir,
            _target(repository, _grpc_url(url)),
            allow_class_change=allow_class_change,
            allow_custom_gate=allow_custom_gate,
        )
    except PublishError as exc:
        raise click.ClickException(str(exc)) from exc
    for note in res.reconciled:
        click.echo(f"reconciled: {note}")
    if not res.created:
        click.echo(
            f"version {res.version} already serves this model (onnx sha256 "
            f"{res.lineage.get('onnx_sha256', '?')[:12]}...); nothing published"
        )
        return
    click.echo(
        f"version {res.version} is serving (previous: {res.previous}); reference profile "
        f"{res.profile_path}"
    )


@click.command("rollback")
@click.option(
    "--repository", type=click.Path(path_type=Path), default=_DEFAULT_REPO, show_default=True
)
@click.option(
    "--url",
    default=None,
    help="Triton gRPC host:port [default: the server this state dir runs, else 127.0.0.1:8001].",
)
def rollback(repository, url):
    """Make the previous version serve again (with the same canary)."""
    from genline.serving.publish import PublishError
    from genline.serving.publish import rollback as do_rollback

    try:
        old, new = do_rollback(_target(repository, _grpc_url(url)))
    except PublishError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"rolled back version {old}; version {new} is serving")


@click.command("generate")
@click.option("--label", type=int, required=True, help="Class index to generate.")
@click.option("-n", "count", type=int, default=16, show_default=True)
@click.option("--seed", type=int, default=None)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Grid PNG to write.")
@click.option(
    "--url",
    default=None,
    help="Triton gRPC host:port [default: the server this state dir runs, else 127.0.0.1:8001].",
)
@click.option("--version", "version", type=int, default=None, help="Pin a model version.")
@click.option("--timeout", "timeout_s", type=float, default=None,
              help="Seconds per request attempt (the gRPC deadline) [default: the client's].")
def generate(label, count, seed, out, url, version, timeout_s):
    """Generate a grid of images for one label through Triton's gRPC API."""
    from genline.client import GenerationError, GenlineClient
    from genline.export import save_grid

    if count < 1:
        raise click.BadParameter("must be >= 1", param_hint="-n")
    if timeout_s is not None and not timeout_s > 0:
        raise click.BadParameter("must be > 0", param_hint="--timeout")
    opts = {} if timeout_s is None else {"timeout_s": timeout_s}
    try:
        with GenlineClient(_grpc_url(url), **opts) as client:
            res = client.generate([label] * count, seed=seed, version=version)
    except GenerationError as exc:
        raise click.ClickException(str(exc)) from exc
    rows = max(1, int(count**0.5))
    save_grid(res.images, rows, out)
    click.echo(
        f"wrote {out} ({count} images of label {label}, model version "
        f"{res.model_version}, request {res.request_id})"
    )


@click.command("predictions")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=None,
    help="Prediction-log directory (default <state>/predictions).",
)
@click.option("--tail", type=int, default=10, show_default=True, help="Rows to print.")
def predictions(directory, tail):
    """Compact the prediction-log spool into hourly Parquet and show the latest rows."""
    from genline.serving.features import select
    from genline.serving.store import read_predictions

    df = read_predictions(directory)
    click.echo(f"{len(df)} logged samples")
    if len(df):
        cols = select(
            "request_id",
            "version",
            "status",
            "label",
            "pred_class",
            "pred_confidence",
            "mean_intensity",
            "latency_ms",
        )
        click.echo(df[cols].tail(tail).to_string(index=False))


COMMANDS: list = [serve, publish, rollback, generate, predictions]
