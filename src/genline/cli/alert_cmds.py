"""`genline alerts list|resolve|test|flush`: on-call's view of the alert router.

Thin adapters over genline.alerting.Router (imported inside the commands).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

_DIR_OPTION = click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=None,
    help="Alerts directory (default: $GENLINE_HOME/alerts).",
)


@click.group("alerts")
def alerts() -> None:
    """Alerts: list incidents, resolve one, test the receivers, deliver what is pending."""


@alerts.command("list")
@click.option("--open", "open_only", is_flag=True, help="Only incidents not resolved.")
@click.option("--json", "as_json", is_flag=True, help="Print the incidents as JSON.")
@_DIR_OPTION
def list_cmd(open_only: bool, as_json: bool, directory: Path | None) -> None:
    """The incidents, oldest first: status, severity, count, dedup key and summary."""
    from genline.alerting import Router

    items = Router(directory).incidents(open_only=open_only)
    if as_json:
        click.echo(json.dumps(items, indent=2, default=str))
        return
    if not items:
        click.echo("no open incidents" if open_only else "no incidents")
        return
    for inc in items:
        alert = inc["alert"]
        status = inc["status"]
        if status == "open" and inc.get("resolve_requested_at"):
            status = "resolving"
        click.echo(
            f"{status:9} {alert['severity']:8} x{inc['count']:<3} {inc['opened_at'][:19]}  "
            f"{inc['key']}\n          {alert['summary'][:160]}"
        )


@alerts.command("resolve")
@click.argument("key")
@_DIR_OPTION
def resolve_cmd(key: str, directory: Path | None) -> None:
    """Resolve the incident with dedup key KEY now (receivers are told at once)."""
    from genline.alerting import Router

    try:
        inc = Router(directory).resolve(key, immediate=True)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from exc
    click.echo(f"{inc['key']}: {inc['status']}")


@alerts.command("test")
@_DIR_OPTION
def test_cmd(directory: Path | None) -> None:
    """Send a test alert through every configured receiver; print what each answered.

    Exit status 1 when any receiver did not accept it.
    """
    from genline import clock
    from genline.alerting import Alert, Router

    router = Router(directory)
    receivers = router.config.enabled()
    alert = Alert(
        "alerting.test",
        "info",
        "genline alerts test: a test alert, resolved right after",
        source="genline.cli",
        subject=clock.now().isoformat(),
    )
    inc = router.fire(alert, deliver=False, receivers=receivers)
    report = router.flush(budget_s=router.config.send_budget_s)
    failed = [r for r in receivers if not report.delivered.get(r)]
    for name in receivers:
        verdict = "ok" if report.delivered.get(name) else "FAILED"
        click.echo(f"{name:13} {verdict:6} {report.answers.get(name, 'no answer')}")
    router.resolve(inc["key"], immediate=True)
    if failed:
        click.echo(f"not accepted by: {', '.join(failed)} (retried by `genline alerts flush`)")
        sys.exit(1)


@alerts.command("flush")
@click.option("--budget", "budget_s", type=float, default=None, help="Seconds to keep retrying.")
@_DIR_OPTION
def flush_cmd(budget_s: float | None, directory: Path | None) -> None:
    """Deliver everything still in the outbox (after a crash or a receiver outage)."""
    from genline.alerting import Router

    report = Router(directory).flush(budget_s)
    for name, n in sorted(report.delivered.items()):
        click.echo(f"{name}: delivered {n}")
    for name, seq, error in report.dead_lettered:
        click.echo(f"{name}: dead-lettered event {seq}: {error}")
    if report.busy:
        click.echo("another process is delivering; it will deliver what is pending")
    click.echo(f"pending: {report.pending}")


COMMANDS: list = [alerts]
