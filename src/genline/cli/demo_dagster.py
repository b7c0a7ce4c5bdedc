"""The demo's plumbing: its shared environment, its subprocesses and the Dagster webserver.

Dagster is never imported here: Dagster work runs in `python -m dagster_project.demo_steps`
subprocesses (`step`), the services and the simulator are `genline` commands (`genline`), and
what the daemon does is followed through the webserver's GraphQL API (`graphql`,
`start_instigators`, `training_runs`). `Demo` (genline.cli.demo_driver) builds on `Plumbing` and
supplies `opts` (its DemoOptions) and `traffic_errors` (what the app traffic thread hit).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import click

from genline.cli.data_cmds import _dagster_env, project_root

DAGSTER_UI = "http://127.0.0.1:3000"


class DemoError(click.ClickException):
    """A stage did not reach its outcome (the message says which and where to look)."""


class Plumbing:
    """The plumbing methods of `Demo` (which supplies `opts` and `traffic_errors`)."""

    def repository(self) -> Path:
        """The demo's Triton model repository (a fresh one under the state dir by default)."""
        from genline.paths import state_dir

        if self.opts.model_repository:
            return Path(self.opts.model_repository).resolve()
        return state_dir() / "triton_repo"

    def env(self) -> dict[str, str]:
        """The environment every service and step of the demo shares."""
        repo = str(self.repository())
        return {
            **_dagster_env(),
            "GENLINE_DRIFT_WINDOW_MINUTES": f"{self.opts.window_minutes:g}",
            "GENLINE_MODEL_REPOSITORY": repo,
            "GENLINE_TRITON_URL": self.opts.triton_url,
            "GENLINE_RETRAIN_COOLDOWN_S": "60",
        }

    def run(self, cmd: list[str], what: str, log_name: str) -> str:
        """Run a command (logged under the run dir); its stdout; DemoError when it fails."""
        from genline.paths import run_dir

        log = run_dir() / f"demo-{log_name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as fh:
            fh.write(f"\n$ {' '.join(cmd)}\n".encode())
            fh.flush()
            proc = subprocess.run(cmd, cwd=project_root(), env=self.env(), stdout=subprocess.PIPE,
                                  stderr=fh, stdin=subprocess.DEVNULL)
            fh.write(proc.stdout)
        if proc.returncode != 0:
            raise DemoError(f"{what} failed (exit {proc.returncode}); log: {log}")
        return proc.stdout.decode()

    def step(self, *args: str, what: str, log_name: str) -> dict:
        out = self.run([sys.executable, "-m", "dagster_project.demo_steps", *args], what,
                       log_name)
        return json.loads(out.strip().splitlines()[-1])

    def genline(self, *args: str, what: str, log_name: str) -> str:
        return self.run([sys.executable, "-m", "genline", *args], what, log_name)

    def wait(self, what: str, probe, poll_s: float = 3.0):
        """Poll `probe()` until it returns something truthy; DemoError after the timeout."""
        deadline = time.monotonic() + self.opts.stage_timeout_s
        while True:
            got = probe()
            if got:
                return got
            if time.monotonic() > deadline:
                raise DemoError(f"timed out after {self.opts.stage_timeout_s:.0f} s waiting for "
                                f"{what}")
            if self.traffic_errors:
                click.echo(f"  (app traffic: {self.traffic_errors[-1]})", err=True)
                self.traffic_errors.clear()
            time.sleep(poll_s)

    def graphql(self, query: str) -> dict:
        req = urllib.request.Request(f"{DAGSTER_UI}/graphql", json.dumps({"query": query})
                                     .encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())["data"]

    def start_instigators(self) -> None:
        """Turn drift_retrain_sensor and drift_schedule on through the webserver (GraphQL): the
        daemon of `dagster dev` ticks them from then on."""
        query = ("{ repositoriesOrError { ... on RepositoryConnection { nodes { name "
                 "location { name } sensors { name } } } } }")

        def located():
            nodes = self.graphql(query)["repositoriesOrError"].get("nodes") or []
            return next((n for n in nodes if any(x["name"] == "drift_retrain_sensor"
                                                 for x in n["sensors"])), None)

        repo = self.wait("the code location to load in the Dagster webserver", located)
        where = (f'repositoryLocationName: "{repo["location"]["name"]}", '
                 f'repositoryName: "{repo["name"]}"')
        for kind, name, field_ in (("Sensor", "drift_retrain_sensor", "sensorState"),
                                   ("Schedule", "drift_schedule", "scheduleState")):
            sel = "sensorSelector" if kind == "Sensor" else "scheduleSelector"
            typ = "Sensor" if kind == "Sensor" else "ScheduleStateResult"
            key = "sensorName" if kind == "Sensor" else "scheduleName"
            got = self.graphql(
                f'mutation {{ start{kind}({sel}: {{{where}, {key}: "{name}"}}) {{ __typename '
                f'... on {typ} {{ {field_} {{ status }} }} ... on PythonError {{ message }} }} }}'
            )[f"start{kind}"]
            if got["__typename"] != typ:
                raise DemoError(f"could not start the {kind.lower()} {name}: "
                                f"{got.get('message') or got['__typename']}")

    def training_runs(self) -> list[dict]:
        """training_job runs (newest first) with their tags, from the Dagster webserver."""
        data = self.graphql('{ runsOrError(filter: {pipelineName: "training_job"}, limit: 10) '
                            '{ ... on Runs { results { runId status startTime endTime '
                            'tags { key value } } } } }')
        runs = data["runsOrError"].get("results", [])
        for r in runs:
            r["tags"] = {t["key"]: t["value"] for t in r["tags"]}
        return runs
