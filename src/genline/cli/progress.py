"""What a person sees of a long run: one line per stage with outcome and timing; the rest to a log.

`run_logged` runs a command (here `python -m dagster_project.materialize`) with stdout and stderr
merged into a log file, and turns the stream into stage lines as it arrives:

    ingest            27 daily batches (Great Expectations)     25 accepted, 2 quarantined   41.2 s
    training_dataset  versioned with DVC                        SUCCESS                        3.1 s
    generator_model   Kubeflow pipeline (kfp.local)
      validate-dataset                                          SUCCESS                        1.9 s
      train-generator                                           SUCCESS                      182.4 s

It reads Dagster's console log format (`... - dagster - LEVEL - job - run_id - pid - [step -]
EVENT - message`), kfp.local's task lines ("Executing task 'x'", "Task 'x' finished with status
S") and the materialize script's "<day>: <status>" lines. On a terminal the current stage shows a
progress bar (the ingest) or a ticking elapsed time (pipeline tasks). Unrecognised lines only go
to the log, except Dagster ERROR lines, which are shown as they come.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

ANSI = re.compile(r"\x1b\[[0-9;]*m")
DAGSTER = re.compile(
    r" - dagster - (?P<level>[A-Z]+) - (?P<job>\w+) - [0-9a-f-]{36} - \d+ - "
    r"(?:(?P<step>\S+) - )?(?P<event>[A-Z_]+) - (?P<msg>.*)$"
)
PARTITION = re.compile(r"^(?P<day>\d{4}-\d{2}-\d{2}): (?P<status>\w+)$")
KFP_START = re.compile(r"Executing task '(?P<task>[^']+)'")
KFP_END = re.compile(r"Task '(?P<task>[^']+)' finished with status (?P<status>\w+)")

# Dagster job -> (stage name, what it does), in the order `make demo` runs them.
STAGES = {
    "ingest_job": ("ingest", "daily batches (Great Expectations)"),
    "training_dataset_job": ("training_dataset", "versioned with DVC"),
    "training_job": ("generator_model", "Kubeflow pipeline (kfp.local)"),
}
NAME_W, WHAT_W, OUTCOME_W = 18, 40, 28


def _fmt_s(seconds: float) -> str:
    return f"{seconds:7.1f} s"


class StageRenderer:
    """Turns the lines of a materialize run into stage lines on `out` (see the module docstring).

    Args:
        out: where the stage lines go (a terminal gets progress displays).
        total_partitions: how many ingest partitions to expect (for the progress bar).
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(
        self,
        out: IO[str],
        total_partitions: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.total = total_partitions
        self.clock = clock
        self.job: str | None = None
        self.job_t0 = 0.0
        self.job_outcome = ""
        self.partitions: dict[str, int] = {}
        self.task: str | None = None
        self.task_t0 = 0.0
        self._live = ""  # the status line being redrawn on a terminal
        self._lock = threading.Lock()

    # -- output -----------------------------------------------------------------------------
    def _print(self, text: str) -> None:
        with self._lock:
            if self._live:
                self.out.write("\r\x1b[2K")
                self._live = ""
            self.out.write(text + "\n")
            self.out.flush()

    def _redraw(self, text: str) -> None:
        if not self.tty:
            return
        with self._lock:
            self.out.write("\r\x1b[2K" + text[:120])
            self.out.flush()
            self._live = text

    def _row(self, name: str, what: str, outcome: str, seconds: float | None) -> str:
        t = _fmt_s(seconds) if seconds is not None else ""
        head = f"{name:<{NAME_W - 1}} {what}"  # a long task name may use the `what` column
        return f"{head:<{NAME_W + WHAT_W - 1}} {outcome:<{OUTCOME_W}}{t}".rstrip()

    def tick(self) -> None:
        """Redraws the live line (called every second by `run_logged` on a terminal)."""
        now = self.clock()
        if self.task is not None:
            self._redraw(self._row(f"  {self.task}", "", "running", now - self.task_t0))
        elif self.job == "ingest_job":
            done = sum(self.partitions.values())
            total = self.total or done
            width = 20
            filled = int(width * done / total) if total else 0
            bar = "#" * filled + "." * (width - filled)
            self._redraw(self._row("ingest", f"[{bar}] {done}/{total}", "", now - self.job_t0))
        elif self.job is not None:
            name, what = STAGES.get(self.job, (self.job, ""))
            self._redraw(self._row(name, what, "running", now - self.job_t0))

    # -- stages -----------------------------------------------------------------------------
    def _start_job(self, job: str) -> None:
        self.end_job()
        self.job, self.job_t0, self.job_outcome = job, self.clock(), ""
        if job == "training_job":  # its tasks get lines of their own below this one
            name, what = STAGES[job]
            self._print(self._row(name, what, "", None))

    def end_job(self) -> None:
        """Prints the line of the stage that is running, if any."""
        if self.job is None:
            return
        job, seconds = self.job, self.clock() - self.job_t0
        self.job = None
        if self.task is not None:
            self._end_task(self.task, "unfinished")
        name, what = STAGES.get(job, (job, ""))
        if job == "ingest_job":
            n = sum(self.partitions.values())
            what = f"{n} {what}"
            outcome = ", ".join(f"{c} {s}" for s, c in sorted(self.partitions.items()))
        else:
            outcome = self.job_outcome or "unfinished"
        if job == "training_job":
            name, what = "  pipeline total", ""
        self._print(self._row(name, what, outcome, seconds))

    def _end_task(self, task: str, status: str) -> None:
        seconds = self.clock() - self.task_t0 if self.task == task else None
        self.task = None
        self._print(self._row(f"  {task}", "", status, seconds))

    def feed(self, raw: str) -> None:
        """Consumes one line of the run's output."""
        line = ANSI.sub("", raw.rstrip("\n"))
        if m := DAGSTER.search(line):
            job, event = m["job"], m["event"]
            if job != self.job:
                self._start_job(job)
            if event == "RUN_SUCCESS":
                self.job_outcome = "SUCCESS"
            elif event in ("RUN_FAILURE", "RUN_CANCELED"):
                self.job_outcome = event.removeprefix("RUN_")
            if m["level"] in ("ERROR", "CRITICAL"):
                self._print(f"  ! {m['step'] or job}: {m['msg'][:200]}")
        elif m := PARTITION.match(line):
            self.partitions[m["status"]] = self.partitions.get(m["status"], 0) + 1
        elif m := KFP_END.search(line):
            self._end_task(m["task"], m["status"])
        elif m := KFP_START.search(line):
            if self.task is not None:
                self._end_task(self.task, "unfinished")
            self.task, self.task_t0 = m["task"], self.clock()
        else:
            return
        self.tick()

    def close(self) -> None:
        self.end_job()


def run_logged(
    cmd: list[str],
    log_path: Path,
    renderer: StageRenderer | None,
    *,
    echo: IO[str] | None = None,
    **popen,
) -> tuple[int, list[str]]:
    """Runs `cmd` with stdout+stderr appended to `log_path`, rendering stage lines as it goes.

    Args:
        cmd: the command.
        log_path: the full log (created with its directory).
        renderer: turns lines into stage lines; None shows none.
        echo: also copy every line here (VERBOSE).
        **popen: passed to subprocess.Popen (cwd, env).

    Returns:
        (exit code, the lines of the command's output that start with "{": its JSON results)
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    json_lines: list[str] = []
    stop = threading.Event()
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            bufsize=1,
            **popen,
        )
        ticker = None
        if renderer is not None and renderer.tty and echo is None:

            def _tick() -> None:
                while not stop.wait(1.0):
                    renderer.tick()

            ticker = threading.Thread(target=_tick, daemon=True)
            ticker.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                log.flush()
                if line.startswith("{"):
                    json_lines.append(line)
                if echo is not None:
                    echo.write(line)
                    echo.flush()
                if renderer is not None:
                    renderer.feed(line)
            code = proc.wait()
        finally:
            stop.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if ticker is not None:
                ticker.join()
            if renderer is not None:
                renderer.close()
    return code, json_lines


def tail(path: Path, n: int = 25) -> list[str]:
    """The last `n` lines of a log, without ANSI colours."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [ANSI.sub("", ln) for ln in lines[-n:]]


def log_path_for(directory: Path, name: str) -> Path:
    """`<directory>/<name>-<YYYYmmdd-HHMMSS>.log` (wall clock)."""
    return directory / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
