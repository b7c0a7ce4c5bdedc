"""`genline ui`: the Dagster UI over the persistent instance, loopback only unless asked.

Dagster is never imported here: the command starts `dagster dev` as a subprocess (in the
background with a pid file and a log in the run directory, or in the foreground).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from genline.cli.data_cmds import _dagster_env, project_root
from genline.procutil import pid_alive

UI_PID_FILE = "dagster.pid"
UI_LOG_FILE = "dagster.log"


def is_loopback(host: str) -> bool:
    """Whether `host` names only this machine (127.0.0.0/8, ::1 or localhost)."""
    import ipaddress

    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost may resolve anywhere
        return False


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; only loopback unless --allow-remote.")
@click.option("--port", type=int, default=3000, show_default=True)
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback --host. The UI has no "
              "authentication and can launch runs: put it behind an authenticating proxy.")
@click.option("--background", is_flag=True, help="Start in the background (pid file in run dir).")
@click.option("--stop", is_flag=True, help="Stop a UI started with --background.")
def ui(host: str, port: int, allow_remote: bool, background: bool, stop: bool) -> None:
    """Start the Dagster UI (`dagster dev`) on genline's code location, on loopback only."""
    from genline.paths import run_dir

    if not stop and not is_loopback(host) and not allow_remote:
        raise click.BadParameter(
            f"{host!r} is not a loopback address: the Dagster UI has no authentication and can "
            "launch and wipe runs, so genline binds it to 127.0.0.1 only. Pass --allow-remote "
            "to bind it elsewhere anyway (behind an authenticating proxy), or use an SSH tunnel",
            param_hint="--host",
        )

    pid_file = run_dir() / UI_PID_FILE
    if stop:
        if not pid_file.exists():
            click.echo("the Dagster UI is not running (no pid file)")
            return
        pid = int(pid_file.read_text().split()[0])
        if pid_alive(pid):
            os.killpg(pid, signal.SIGTERM)  # dagster dev runs its webserver/daemon as children
            for _ in range(100):
                if not pid_alive(pid):
                    break
                time.sleep(0.1)
            else:
                os.killpg(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)
        click.echo(f"stopped the Dagster UI (pid {pid})")
        return
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or "dagster"
    cmd = [dagster, "dev", "-m", "dagster_project.definitions", "-h", host, "-p", str(port)]
    env = _dagster_env()
    if not background:
        os.chdir(project_root())
        os.execvpe(cmd[0], cmd, env)
    if pid_file.exists() and pid_alive(int(pid_file.read_text().split()[0])):
        click.echo(f"the Dagster UI is already running (pid {pid_file.read_text().split()[0]})")
        return
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    log = open(run_dir() / UI_LOG_FILE, "ab")
    proc = subprocess.Popen(
        cmd,
        cwd=project_root(),
        env=env,
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    pid_file.write_text(f"{proc.pid}\n")
    url = f"http://{host}:{port}"
    import urllib.request

    for _ in range(240):  # the webserver needs a few seconds to load the code location
        if proc.poll() is not None:
            raise click.ClickException(
                f"dagster dev exited with {proc.returncode}; see {run_dir() / UI_LOG_FILE}"
            )
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=1):
                break
        except OSError:
            time.sleep(0.5)
    else:
        click.echo(f"dagster dev is still starting; log: {run_dir() / UI_LOG_FILE}")
    click.echo(
        f"Dagster UI: {url} (pid {proc.pid}, DAGSTER_HOME={env['DAGSTER_HOME']}); "
        "stop with `genline ui --stop`"
    )


COMMANDS: list = [ui]
