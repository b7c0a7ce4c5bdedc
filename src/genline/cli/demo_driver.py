"""`genline demo`: the whole loop on the built-in digits, with a timeline.

    history -> validate -> version -> train (Kubeflow pipeline) -> gate -> publish -> app traffic
    -> new deliveries in another style, accepted with an input-drift warning -> staleness
    detected (the Dagster drift schedule, run by the daemon) -> alert delivered -> the retrain
    sensor (daemon) retrains on the new data version -> the challenger wins and serves ->
    staleness resolves against the new data.

Every stage is a function of `Demo`; `--until STAGE` stops after it. Dagster is never imported
here: Dagster work runs in `python -m dagster_project.demo_steps` subprocesses, and what the daemon
does is followed through the webserver's GraphQL API and genline's own records (the verdict log,
the alert file sink, the serving registry); that plumbing is genline.cli.demo_dagster.
Durations use `time.monotonic()`; "since" filters on records use `genline.clock` like the
records themselves.

The simulated window is the 28 days ending yesterday: the history is its first 28 - N days, the
new-style deliveries its last N days (held-out digits, drawn in the new style).
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta

import click

from genline.cli.data_cmds import project_root
from genline.cli.demo_dagster import DAGSTER_UI, DemoError, Plumbing

STAGES = (
    "services",
    "history",
    "train",
    "traffic",
    "deliveries",
    "staleness",
    "alert",
    "retrain",
    "serving",
    "resolved",
)
TIMELINE_FILE = "demo-timeline.json"


@dataclass
class Event:
    """One line of the timeline."""

    stage: str
    at_s: float  # since the demo started
    seconds: float
    outcome: str
    link: str = ""
    ok: bool = True


@dataclass
class DemoOptions:
    preset: str = "ci"
    style: str = "thick"
    new_days: int = 7
    window_minutes: float = 1.0
    triton_url: str = "127.0.0.1:8001"
    model_repository: str = ""  # empty: <state>/triton_repo, made from the committed config
    per_label: int = 6  # images per label per traffic request
    traffic_interval_s: float = 1.5
    stage_timeout_s: float = 300.0
    days: int = 28


@dataclass
class Demo(Plumbing):
    opts: DemoOptions
    events: list[Event] = field(default_factory=list)
    facts: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._traffic: threading.Thread | None = None
        self.sent = 0
        self.traffic_errors: list[str] = []

    # --- simulation window and serving version ----------------------------------------------

    def days(self) -> tuple[str, str, str, str]:
        """(history first, history last, new first, new last) days of the simulated window."""
        from genline.ingest import simulation_window

        first, last = simulation_window(self.opts.days)
        new_first = last - timedelta(days=self.opts.new_days - 1)
        return (first.isoformat(), (new_first - timedelta(days=1)).isoformat(),
                new_first.isoformat(), last.isoformat())

    def serving(self) -> int | None:
        from genline import contract
        from genline.serving.registry import Registry

        return Registry().serving(self.repository(), contract.MODEL_NAME)

    # --- app traffic ------------------------------------------------------------------------

    def _traffic_loop(self) -> None:
        import numpy as np

        from genline.client import GenerationError, GenlineClient

        labels = np.repeat(np.arange(10), self.opts.per_label)
        seed = 0
        with GenlineClient(self.opts.triton_url, timeout_s=20, deadline_s=60) as client:
            while not self._stop.is_set():
                seed += 1
                try:
                    client.generate(labels, seed=10_000 + seed)
                    self.sent += len(labels)
                except GenerationError as exc:  # keep going: a publish swaps versions
                    self.traffic_errors.append(str(exc)[:200])
                self._stop.wait(self.opts.traffic_interval_s)

    def start_traffic(self) -> None:
        if self._traffic is None:
            self._traffic = threading.Thread(target=self._traffic_loop, name="app-traffic",
                                             daemon=True)
            self._traffic.start()

    def stop_traffic(self) -> None:
        self._stop.set()
        if self._traffic is not None:
            self._traffic.join(timeout=30)

    # --- the stages -------------------------------------------------------------------------

    def stage_services(self) -> tuple[str, str]:
        """Triton and the Dagster UI (webserver + daemon), started with the demo's settings."""
        import shutil

        from genline import contract

        repo = self.repository()
        if not (repo / contract.MODEL_NAME / "config.pbtxt").is_file():
            committed = project_root() / "triton_repo" / contract.MODEL_NAME
            shutil.copytree(committed, repo / contract.MODEL_NAME, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("[0-9]*", ".*"))
        self.genline("serve", "--background", "--repository", str(repo),
                     what="starting Triton", log_name="services")
        # restarted so `dagster dev` (and its daemon) runs with the demo's environment
        self.genline("ui", "--stop", what="stopping the Dagster UI", log_name="services")
        self.genline("ui", "--background", what="starting the Dagster UI", log_name="services")
        self.start_instigators()
        return ("Triton up, Dagster UI + daemon up; drift_schedule and drift_retrain_sensor "
                f"running (windows of {self.opts.window_minutes:g} min)", DAGSTER_UI)

    def stage_history(self) -> tuple[str, str]:
        """Ingest the history: validate each day (GX), accept or quarantine, version with DVC."""
        first, last, _, _ = self.days()
        out = self.step("ingest", "--first", first, "--last", last, what="ingesting the history",
                        log_name="history")
        status = out["partitions"]
        accepted = sum(1 for s in status.values() if s == "accepted")
        td = out["training_dataset"]
        self.facts["dataset_v1"] = td["dvc_md5"]
        return (f"{accepted}/{len(status)} days accepted ({first}..{last}); training_dataset "
                f"{td['dvc_md5'][:12]} ({td['num_rows']} rows)", td["path"])

    def stage_train(self) -> tuple[str, str]:
        """Train through the Kubeflow pipeline (kfp.local), gate, export, publish to Triton."""
        out = self.step("train", "--preset", self.opts.preset, "--publish", "--model-repository",
                        str(self.repository()), "--triton-url",
                        self.opts.triton_url, what="training through the Kubeflow pipeline",
                        log_name="train")
        meta = out.get("metadata") or {}
        if not out.get("success") or not meta.get("gate_passed"):
            raise DemoError(f"the first training did not pass its gate: "
                            f"{meta.get('gate_reasons')}")
        version = self.serving()
        self.facts["v1"] = version
        fd = (meta.get("metrics") or {}).get("fd_ratio")
        fd = f"{fd:.3f}" if isinstance(fd, int | float) else fd
        served = self.show_student(version)
        return (f"preset {self.opts.preset}: gate passed (fd_ratio {fd}), published as version "
                f"{version}; {served}", f"{DAGSTER_UI}/runs/{out.get('run_id')}")

    def show_student(self, version: int | None) -> str:
        """Print the teacher/student metrics table of the published version; say which serves."""
        from pathlib import Path

        from genline import contract
        from genline.cli.model_cmds import print_student
        from genline.fsutil import read_json
        from genline.serving.registry import Registry

        info = Registry().version_info(self.repository(), contract.MODEL_NAME, version) or {}
        model_dir = (info.get("lineage") or {}).get("model_dir")
        try:
            export = read_json(Path(model_dir) / contract.EXPORT_REPORT) if model_dir else {}
        except (OSError, ValueError):
            export = {}
        student = export.get("student")
        if not student:
            return "no distilled student"
        print_student(student)
        return ("the distilled 2-step student serves" if student.get("adopted")
                else "the teacher serves (student not adopted)")

    def stage_traffic(self) -> tuple[str, str]:
        """App requests through the Triton client (genline.client), kept flowing to the end."""
        self.start_traffic()
        self.wait("the first app responses", lambda: self.sent > 0, poll_s=0.5)
        rate = self.opts.per_label * 10 / self.opts.traffic_interval_s
        return (f"app traffic flowing: ~{rate:.0f} images/s, {self.opts.per_label} per label "
                f"per request", f"grpc://{self.opts.triton_url}")

    def stage_deliveries(self) -> tuple[str, str]:
        """New deliveries in another style arrive: accepted (valid) with the input-drift WARN."""
        from genline import clock

        _, _, first, last = self.days()
        self.genline("data", "simulate", "--style", self.opts.style, "--last",
                     str(self.opts.new_days), what="delivering the new-style batches",
                     log_name="deliveries")
        self.facts["deliveries_at"] = clock.now().timestamp()
        out = self.step("ingest", "--first", first, "--last", last,
                        what="ingesting the new deliveries", log_name="deliveries")
        status = out["partitions"]
        accepted = [d for d, s in status.items() if s == "accepted"]
        warned = [d for d, w in out["warned"].items() if "batch_matches_training_data" in w]
        if len(accepted) != len(status):
            raise DemoError(f"new-style deliveries were not all accepted: {status}")
        td = out["training_dataset"]
        self.facts["dataset_v2"] = td["dvc_md5"]
        from genline.drift_verdicts import read_verdicts

        drift = [v for v in read_verdicts(monitor="input_batch") if v.status == "drift"
                 and v.window_key in status]
        link = drift[-1].report if drift and drift[-1].report else ""
        return (f"{len(accepted)}/{len(status)} {self.opts.style} batches accepted, "
                f"{len(warned)} flagged by the input-drift WARN check; training_dataset "
                f"{td['dvc_md5'][:12]} ({td['num_rows']} rows)", link)

    def stage_staleness(self) -> tuple[str, str]:
        """The drift schedule (daemon) judges minute windows: staleness of the serving version."""
        from genline.drift_verdicts import read_verdicts

        since, version = self.facts.get("deliveries_at", 0.0), self.facts.get("v1")

        def probe():
            vs = [v for v in read_verdicts(monitor="staleness", version=version, since=since)
                  if v.status == "drift"]
            return vs[0] if vs else None

        v = self.wait(f"a staleness drift verdict for version {version}", probe)
        self.facts["detected_at_mono"] = time.monotonic()
        self.facts["stale_excess"] = v.scores.get("mmd2_excess")
        return (f"version {v.version} stale in window {v.window_key}: MMD^2 excess "
                f"{v.scores.get('mmd2_excess', float('nan')):.3f} > "
                f"{v.thresholds.get('mmd2_excess', float('nan')):.3f} against "
                f"{v.details.get('real_data', 'the newest data')}"[:240], v.report or "")

    def stage_alert(self) -> tuple[str, str]:
        """The drift.stale_model alert, delivered to the file receiver (and any configured)."""
        from genline.alerts import ALERTS_FILE, read_alerts
        from genline.paths import alerts_dir

        def probe():
            hits = [a for a in read_alerts() if a.get("kind") == "drift.stale_model"]
            return hits[-1] if hits else None

        a = self.wait("the drift.stale_model alert", probe, poll_s=1.0)
        return (f"{a.get('severity')} {a.get('kind')}: {a.get('summary', '')}"[:200],
                str(alerts_dir() / ALERTS_FILE))

    def stage_retrain(self) -> tuple[str, str]:
        """The retrain sensor (daemon) launches training_job: warm start, champion/challenger."""

        def launched():
            runs = [r for r in self.training_runs() if "genline/retrain_episode" in r["tags"]]
            return runs[0] if runs else None

        run = self.wait("the retrain sensor's training_job run", launched)
        self.facts["retrain_run"] = run["runId"]

        def finished():
            r = next((r for r in self.training_runs() if r["runId"] == run["runId"]), None)
            return r if r and r["status"] in ("SUCCESS", "FAILURE", "CANCELED") else None

        done = self.wait(f"training_job run {run['runId'][:8]} to finish", finished)
        if done["status"] != "SUCCESS":
            raise DemoError(f"the retrain run {run['runId']} ended {done['status']}: see "
                            f"{DAGSTER_UI}/runs/{run['runId']}")
        return (f"run {run['runId'][:8]} for episode {run['tags']['genline/retrain_episode']} "
                f"succeeded", f"{DAGSTER_UI}/runs/{run['runId']}")

    def stage_serving(self) -> tuple[str, str]:
        """The challenger won and serves: a new version answers app requests."""
        import numpy as np

        from genline.client import GenlineClient

        v1 = self.facts.get("v1")
        version = self.wait("a new serving version", lambda: (s := self.serving()) != v1 and s)
        with GenlineClient(self.opts.triton_url) as client:
            got = client.generate(np.arange(10), seed=7)
        if got.model_version != version:
            raise DemoError(f"the registry says version {version} serves, Triton answered "
                            f"with {got.model_version}")
        self.facts["v2"] = version
        if "detected_at_mono" in self.facts:
            self.facts["detection_to_serving_s"] = round(
                time.monotonic() - self.facts["detected_at_mono"], 1)
        return (f"version {version} (challenger) serves; Triton answered with version "
                f"{got.model_version}", f"genline lineage {version}")

    def stage_resolved(self) -> tuple[str, str]:
        """Staleness of the new version, measured against the new data: no drift."""
        from genline import clock
        from genline.drift_verdicts import read_verdicts

        version, since = self.facts.get("v2"), clock.now().timestamp()

        def probe():
            vs = [v for v in read_verdicts(monitor="staleness", version=version, since=since)
                  if v.status in ("no_drift", "drift")]
            return vs[0] if vs else None

        v = self.wait(f"a staleness verdict for version {version}", probe)
        if v.status != "no_drift":
            raise DemoError(f"version {version} is still stale: {v.reason}")
        return (f"version {v.version} in window {v.window_key}: no drift, MMD^2 excess "
                f"{v.scores.get('mmd2_excess', float('nan')):.3f} against "
                f"{v.details.get('real_data', 'the newest data')} (it was trained on the new "
                f"batches; version {self.facts.get('v1')} was stale at "
                f"{self.facts.get('stale_excess', float('nan')):.3f})"[:300], v.report or "")

    # --- driver -----------------------------------------------------------------------------

    def run_stages(self, until: str) -> None:
        last = STAGES.index(until)
        for name in STAGES[: last + 1]:
            fn = getattr(self, f"stage_{name}")
            start = time.monotonic()
            click.echo(f"[{start - self.t0:7.1f}s] {name}: {fn.__doc__.splitlines()[0]}")
            try:
                outcome, link = fn()
            except DemoError as exc:
                self.record(Event(name, start - self.t0, time.monotonic() - start,
                                  exc.message, ok=False))
                raise
            self.record(Event(name, start - self.t0, time.monotonic() - start, outcome, link))

    def record(self, event: Event) -> None:
        from genline.fsutil import atomic_write_json
        from genline.paths import run_dir

        self.events.append(event)
        mark = "ok  " if event.ok else "FAIL"
        click.echo(f"  {mark} {event.seconds:6.1f}s  {event.outcome}")
        if event.link:
            click.echo(f"        -> {event.link}")
        atomic_write_json(run_dir() / TIMELINE_FILE, {
            "events": [asdict(e) for e in self.events],
            "facts": {k: v for k, v in self.facts.items() if k != "detected_at_mono"},
            "options": asdict(self.opts),
            "total_s": round(time.monotonic() - self.t0, 1),
        })

    def summary(self) -> None:
        from genline.paths import run_dir, state_dir

        click.echo("\ntimeline (stage, at, took, outcome):")
        for e in self.events:
            click.echo(f"  {e.stage:<11} {e.at_s:7.1f}s {e.seconds:7.1f}s  "
                       f"{'ok' if e.ok else 'FAILED'}  {e.outcome[:90]}")
        click.echo(f"  total {time.monotonic() - self.t0:.1f}s"
                   + (f"; detection -> retrained version serving "
                      f"{self.facts['detection_to_serving_s']}s"
                      if "detection_to_serving_s" in self.facts else ""))
        click.echo(f"\nTriton: gRPC {self.opts.triton_url}, metrics http://127.0.0.1:8002/metrics")
        click.echo(f"Dagster UI: {DAGSTER_UI} (runs, asset checks, drift assets)")
        click.echo(f"drift reports: {state_dir() / 'drift' / 'reports'}")
        click.echo(f"timeline: {run_dir() / TIMELINE_FILE}; stop everything with `make stop`")

