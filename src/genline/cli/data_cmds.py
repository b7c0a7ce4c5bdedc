"""CLI commands of the data area: `genline data ...` (the Dagster UI is `genline.cli.ui_cmds`).

Dagster is never imported here: `genline data materialize` runs `python -m
dagster_project.materialize` as a subprocess.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click


def _dvc_config(repo: str | None, remote: str | None):
    from genline.versioning import DvcConfig

    return DvcConfig.default(
        repo_dir=repo, remote_url=remote or os.environ.get("GENLINE_DVC_REMOTE_URL")
    )


def project_root() -> Path:
    """The directory holding `dagster_project/`: the current one, else the source checkout."""
    for candidate in (Path.cwd(), Path(__file__).resolve().parents[3]):
        if (candidate / "dagster_project" / "definitions.py").is_file():
            return candidate
    raise click.ClickException("cannot find dagster_project/ (run from the genline checkout)")


def dagster_home() -> Path:
    """$DAGSTER_HOME, else <state>/dagster_home (created with telemetry off)."""
    from genline.paths import state_dir

    home = Path(os.environ.get("DAGSTER_HOME") or state_dir() / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    yaml = home / "dagster.yaml"
    if not yaml.exists():
        yaml.write_text("telemetry:\n  enabled: false\n")
    return home


def _dagster_env() -> dict[str, str]:
    env = dict(os.environ)
    from genline.paths import state_dir

    env["DAGSTER_HOME"] = str(dagster_home())
    env["GENLINE_HOME"] = str(state_dir())  # dagster dev runs from the project root
    root = str(project_root())
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@click.group("data")
def data() -> None:
    """Daily batches, validation, quarantine and DVC dataset versions."""


@data.command("validate")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--reference",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Accepted data to compare with (.npz or class folders).",
)
@click.option("--min-rows", type=int, default=None, help="Fewest images accepted.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the JSON validation result here.",
)
def validate_cmd(
    path: Path, reference: Path | None, min_rows: int | None, out: Path | None
) -> None:
    """Run the validation suite on an .npz or image folder; exit 1 when a check fails."""
    from genline.data import DataError, load_dataset
    from genline.fsutil import atomic_write_json
    from genline.ingest import read_delivery
    from genline.validation import ValidationConfig, ValidationResult, validate_dataset

    cfg = ValidationConfig(min_rows=min_rows) if min_rows else ValidationConfig()
    ref = load_dataset(reference) if reference else None
    try:
        ds = read_delivery(path, classes=ref.classes if ref else None)
        result = validate_dataset(ds, ref, cfg)
    except DataError as exc:
        result = ValidationResult.unreadable(str(path), str(exc))
    if out:
        atomic_write_json(out, result.to_dict())
    warned = {c.name for c in result.warned_checks}
    for c in result.checks:
        mark = "skip" if c.skipped else ("ok  " if c.passed else "warn" if c.name in warned
                                         else "FAIL")
        click.echo(f"{mark} {c.name}: {c.summary}")
    click.echo(("PASSED " if result.success else "FAILED ") + result.summary())
    if not result.success:
        raise SystemExit(1)


@data.command("simulate")
@click.option(
    "--start", default=None, help="First day (YYYY-MM-DD); default: the days ending yesterday."
)
@click.option("--days", type=int, default=None, help="Number of simulated days.")
@click.option("--style", type=click.Choice(["plain", "thick", "slant"]), default="plain",
              show_default=True, help="Handwriting style of the deliveries: thick strokes or a "
              "right slant (the same valid digits, drawn differently).")
@click.option("--last", "last_days", type=int, default=None,
              help="Only the newest N days of the window (e.g. new deliveries in a new style).")
def simulate_cmd(start: str | None, days: int | None, style: str, last_days: int | None) -> None:
    """Deliver the built-in digits' daily batches into the drop folder incoming/<day>/.

    "Yesterday" is by genline.clock: set GENLINE_NOW=YYYY-MM-DD to simulate another date.
    Days that already have a delivery are left alone.
    """
    from genline.data import DataError
    from genline.ingest import DEFAULT_SIM_DAYS, BatchStore, simulate_history, simulation_window

    store = BatchStore.default()
    n = days or DEFAULT_SIM_DAYS
    try:
        first, last = simulation_window(n, start)
        folders = simulate_history(store, first, n, style=style, last=last_days)
    except (DataError, ValueError) as exc:  # ValueError: a malformed GENLINE_NOW
        raise click.ClickException(str(exc)) from exc
    span = f"{folders[0].name}..{folders[-1].name}" if folders else f"{first}..{last}"
    click.echo(f"{len(folders)} daily deliveries ({span}, style {style}) in {store.incoming}")


@data.command("photos")
@click.option("--size", type=int, default=32, show_default=True, help="Tile side in pixels.")
@click.option("--stride", type=int, default=None, help="Grid step (default: the tile size).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
def photos_cmd(size: int, stride: int | None, out: Path) -> None:
    """Write real photographs shipped in installed packages (scikit-learn's china and flower,
    matplotlib's Grace Hopper), cut into SIZE x SIZE RGB tiles, as an image folder (one class
    per photo) for `genline train --data OUT`."""
    from genline.data import DataError
    from genline.photos import write_photo_folder

    try:
        path = write_photo_folder(out, size, stride)
    except DataError as exc:
        raise click.UsageError(str(exc)) from exc
    counts = {d.name: len(list(d.iterdir())) for d in sorted(path.iterdir())}
    click.echo(f"wrote {path}: {sum(counts.values())} images of {size}x{size} "
               f"({', '.join(f'{k} {v}' for k, v in counts.items())})")


@data.command("quarantine")
def quarantine_cmd() -> None:
    """List quarantined batches and why they were rejected."""
    from genline.ingest import BatchStore, quarantined

    items = quarantined(BatchStore.default())
    if not items:
        click.echo("no quarantined batches")
    for q in items:
        click.echo(f"{q['day']}  {', '.join(q['failed'])}\n    {q['summary']}\n    {q['path']}")


@data.command("versions")
@click.option("--repo", default=None, help="Data repository (default <state>/data_repo).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def versions_cmd(repo: str | None, as_json: bool) -> None:
    """List recorded dataset versions, newest first."""
    from genline.versioning import list_versions

    versions = list_versions(_dvc_config(repo, None))
    if as_json:
        click.echo(json.dumps([v.to_dict() for v in versions], indent=2, default=str))
        return
    if not versions:
        click.echo("no dataset versions recorded yet")
    for v in versions:
        click.echo(f"{v.md5}  {v.created}  {v.info.get('num_rows', '?'):>6} rows  {v.message}")


@data.command("checkout")
@click.argument("version")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the dataset (default <state>/checkouts/<md5>.npz).",
)
@click.option("--repo", default=None, help="Data repository (default <state>/data_repo).")
@click.option("--remote", default=None, help="Override the DVC remote URL.")
def checkout_cmd(version: str, out: Path | None, repo: str | None, remote: str | None) -> None:
    """Restore dataset VERSION (DVC md5, prefix, commit or 'latest') byte for byte."""
    from genline.paths import state_dir
    from genline.versioning import VersioningError, checkout, resolve_version

    cfg = _dvc_config(repo, remote)
    try:
        v = resolve_version(cfg, version)
        target = out or state_dir() / "checkouts" / f"{v.md5}.npz"
        v, path = checkout(cfg, v.md5, target)
    except VersioningError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"restored {v.md5} ({v.size} bytes, {v.info.get('num_rows', '?')} rows) -> {path}")


@data.command("verify")
@click.argument("version", required=False, default=None)
@click.option("--repair", is_flag=True, help="Replace corrupt local cache objects with the "
              "verified remote copy and restore the dataset file.")
@click.option("--repo", default=None, help="Data repository (default <state>/data_repo).")
@click.option(
    "--remote",
    default=None,
    help="Audit this DVC remote (directory or URL) instead of the repository's configured one.",
)
def verify_cmd(version: str | None, repair: bool, repo: str | None, remote: str | None) -> None:
    """Audit dataset VERSION (default: every version): download each object from the remote into
    an empty cache and re-hash it, then re-hash the local cache. Exit 1 naming bad objects."""
    from genline.versioning import VersioningError, verify_versions

    cfg = _dvc_config(repo, remote)
    override = remote or os.environ.get("GENLINE_DVC_REMOTE_URL") or None
    try:
        audits = verify_versions(cfg, version, repair=repair, remote_url=override)
    except VersioningError as exc:  # RemoteAuthError says "authentication ... failed"
        raise click.ClickException(str(exc)) from exc
    audited = next((a.remote for a in audits if a.where == "remote"), "")
    click.echo(f"remote audited: {audited}" + ("" if override else " (the repository's remote)"))
    for a in audits:
        detail = f" (bytes hash to {a.actual})" if a.actual else ""
        click.echo(f"{a.status:<8} {a.where:<6} {a.name}  version {a.version}{detail}")
    bad = [a for a in audits if a.bad]
    if bad:
        cache_bad = any(a.where == "cache" for a in bad)
        hint = "; rerun with --repair to restore the cache from the remote" if (
            cache_bad and not repair) else ""
        names = ", ".join(f"{a.where}:{a.name} ({a.status})" for a in bad)
        click.echo(f"FAILED {len(bad)} bad object(s): {names}{hint}", err=True)
        raise SystemExit(1)
    click.echo(f"OK {len(audits)} object(s) verified against their recorded md5")


@data.command("path")
@click.argument("version", default="latest")
@click.option("--repo", default=None, help="Data repository (default <state>/data_repo).")
def path_cmd(version: str, repo: str | None) -> None:
    """Print the .npz path of dataset VERSION (default latest), restoring it if needed.

    For scripts: `genline train --data "$(genline data path)"`.
    """
    from genline.paths import state_dir
    from genline.versioning import (
        TRACKED_NAME,
        VersioningError,
        checkout,
        md5_file,
        resolve_version,
    )

    cfg = _dvc_config(repo, None)
    try:
        v = resolve_version(cfg, version)
        target = state_dir() / "datasets" / v.md5 / TRACKED_NAME
        if not target.is_file() or md5_file(target) != v.md5:
            checkout(cfg, v.md5, target)
    except VersioningError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(str(target))


@data.command("materialize")
@click.option("--days", type=int, default=None, help="Only the last N daily partitions.")
@click.option("--train", is_flag=True, help="Then train through the Kubeflow pipeline "
              "(the generator_model asset) on the new dataset version.")
@click.option("--preset", default=None, help="Training preset for --train (ci, default).")
@click.option("--publish", is_flag=True, help="With --train: publish to Triton if the gate passes.")
@click.option("--model-repository", default=None, help="Triton model repository for --publish.")
@click.option("--triton-url", default=None, help="Triton gRPC address for --publish.")
@click.option("-v", "--verbose", is_flag=True, help="Show Dagster's and kfp.local's full output "
              "(always written to a log file under $GENLINE_HOME/run/).")
def materialize_cmd(days: int | None, train: bool, preset: str | None, publish: bool,
                    model_repository: str | None, triton_url: str | None, verbose: bool) -> None:
    """Ingest the daily partitions and version training_dataset in the Dagster instance."""
    from genline.cli import progress
    from genline.ingest import DEFAULT_SIM_DAYS
    from genline.paths import run_dir

    cmd = [sys.executable, "-m", "dagster_project.materialize"]
    if days:
        cmd += ["--days", str(days)]
    if train:
        cmd.append("--train")
        cmd += ["--preset", preset] if preset else []
        cmd += ["--publish"] if publish else []
        if model_repository:
            cmd += ["--model-repository", str(Path(model_repository).resolve())]
        cmd += ["--triton-url", triton_url] if triton_url else []
    log = progress.log_path_for(run_dir(), "materialize")
    renderer = progress.StageRenderer(sys.stdout, total_partitions=days or DEFAULT_SIM_DAYS)
    code, lines = progress.run_logged(cmd, log, renderer, echo=sys.stdout if verbose else None,
                                      cwd=project_root(), env=_dagster_env())
    out = json.loads(lines[-1]) if lines else {}
    if not out.get("training_dataset"):
        click.echo("\n".join(["last lines of the log:", *progress.tail(log)]), err=True)
        raise click.ClickException(f"materializing the data assets failed (exit {code}); "
                                   f"full log: {log}")
    status = out["partitions"]
    accepted = sum(1 for s in status.values() if s == "accepted")
    quarantined = sorted(d for d, s in status.items() if s != "accepted")
    click.echo(f"{accepted}/{len(status)} daily batches accepted"
               + (f"; not accepted: {', '.join(quarantined)}" if quarantined else ""))
    ds = out["training_dataset"]
    click.echo(f"training_dataset {ds['dvc_md5']}: {ds['num_rows']} rows -> {ds['path']}")
    click.echo(f"full log: {log}")
    if train:
        _print_model(out.get("generator_model") or {})


def _print_model(model: dict) -> None:
    """The generator_model materialization: the pipeline run, its metrics and the gate."""
    from genline.cli.model_cmds import print_metrics

    meta = model.get("metadata") or {}
    click.echo(f"generator_model (Dagster run {model.get('run_id')}): Kubeflow run "
               f"{meta.get('kfp_run_id')} [{meta.get('kfp_mode')}] {meta.get('kfp_state')}")
    metrics = meta.get("metrics") or {}
    reasons = meta.get("gate_reasons") or []
    print_metrics(metrics, {"passed": bool(meta.get("gate_passed")),
                            "reasons": [reasons] if isinstance(reasons, str) and reasons
                            else list(reasons or [])})
    for key in ("model_dir", "sample_grid", "published_version"):
        if key in meta:
            click.echo(f"{key}: {meta[key]}")
    if not model.get("success"):
        raise click.ClickException("training through the Kubeflow pipeline failed or its gate "
                                   "failed (details above and in the Dagster UI)")


COMMANDS: list = [data]
