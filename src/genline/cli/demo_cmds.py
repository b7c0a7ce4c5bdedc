"""`genline demo`: the whole loop on the built-in digits, with a timeline (the driver is
genline.cli.demo_driver; the stages are listed in its docstring and in docs/demo.md)."""

from __future__ import annotations

import os

import click

from genline.cli.demo_driver import STAGES, Demo, DemoOptions


@click.command("demo")
@click.option("--until", type=click.Choice(STAGES), default=STAGES[-1], show_default=True,
              help="Stop after this stage.")
@click.option("--preset", default=DemoOptions.preset, show_default=True,
              help="Training preset of the first model.")
@click.option("--style", type=click.Choice(["thick", "slant"]), default=DemoOptions.style,
              show_default=True, help="Handwriting style of the new deliveries.")
@click.option("--new-days", type=int, default=DemoOptions.new_days, show_default=True,
              help="How many of the window's last days arrive in the new style.")
@click.option("--window-minutes", type=float, default=DemoOptions.window_minutes,
              show_default=True, help="Drift window length (GENLINE_DRIFT_WINDOW_MINUTES).")
@click.option("--stage-timeout", type=float, default=DemoOptions.stage_timeout_s,
              show_default=True, help="Seconds a waiting stage may take.")
@click.option("--model-repository", default="",
              help="Triton model repository (default: a fresh <state>/triton_repo).")
@click.option("--triton-url", default=DemoOptions.triton_url, show_default=True)
def demo(until: str, preset: str, style: str, new_days: int, window_minutes: float,
         stage_timeout: float, model_repository: str, triton_url: str) -> None:
    """Run the full loop on the built-in digits and print its timeline (see docs/demo.md)."""
    from genline.paths import state_dir

    if not 1 <= new_days < 28:
        raise click.BadParameter("must be in 1..27 (the history keeps the rest)",
                                 param_hint="--new-days")
    if (state_dir() / "accepted").is_dir() and any((state_dir() / "accepted").iterdir()):
        raise click.ClickException(
            f"{state_dir()} already holds ingested data: the demo needs a fresh state directory "
            "(`make stop`, then remove it, or set GENLINE_HOME to a new one)")
    opts = DemoOptions(preset=preset, style=style, new_days=new_days,
                       window_minutes=window_minutes, stage_timeout_s=stage_timeout,
                       model_repository=model_repository, triton_url=triton_url)
    os.environ.setdefault("GENLINE_HOME", str(state_dir()))
    d = Demo(opts)
    try:
        d.run_stages(until)
    finally:
        d.stop_traffic()
        d.summary()


COMMANDS: list = [demo]
