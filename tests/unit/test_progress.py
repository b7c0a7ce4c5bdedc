"""The stage lines `genline data materialize` prints from Dagster's and kfp.local's output."""

from __future__ import annotations

import io
import sys

from genline.cli.progress import StageRenderer, run_logged, tail

RUN = "b8e20c86-2ca0-45e6-8fe6-816e564767f0"


def dagster(
    job: str, event: str, msg: str = "", step: str | None = None, level: str = "DEBUG"
) -> str:
    mid = f"{step} - " if step else ""
    return (
        f"2026-12-01 22:07:59 +0000 - dagster - {level} - {job} - {RUN} - 30430 - "
        f"{mid}{event} - {msg}\n"
    )


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_stages_tasks_outcomes_and_timings():
    out, clock = io.StringIO(), FakeClock()
    r = StageRenderer(out, total_partitions=3, clock=clock)
    for day, status in [
        ("2026-11-01", "accepted"),
        ("2026-11-02", "quarantined"),
        ("2026-11-03", "accepted"),
    ]:
        r.feed(dagster("ingest_job", "RUN_START"))
        r.feed(dagster("ingest_job", "STEP_START", step="incoming_batch"))
        clock.t += 2
        r.feed(dagster("ingest_job", "RUN_SUCCESS"))
        r.feed(f"{day}: {status}\n")
    r.feed(dagster("training_dataset_job", "RUN_START"))
    clock.t += 4
    r.feed(dagster("training_dataset_job", "RUN_SUCCESS"))
    r.feed(dagster("training_job", "RUN_START"))
    r.feed("\x1b[1mExecuting task \x1b[96m'train-generator'\x1b[0m\n")
    r.feed("train: 100%|#####| 3000/3000\n")  # task output: log only
    clock.t += 100
    r.feed("Task \x1b[96m'train-generator'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m\n")
    r.feed(
        dagster(
            "training_job",
            "STEP_FAILURE",
            "gate failed: fd_ratio 3.1 > 1.6",
            step="generator_model",
            level="ERROR",
        )
    )
    r.feed(dagster("training_job", "RUN_FAILURE"))
    r.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("ingest") and "3 daily batches" in lines[0]
    assert "2 accepted, 1 quarantined" in lines[0] and lines[0].endswith("6.0 s")
    assert lines[1].startswith("training_dataset") and "SUCCESS" in lines[1]
    assert lines[1].endswith("4.0 s")
    assert lines[2].startswith("generator_model")
    assert lines[3].split()[:2] == ["train-generator", "SUCCESS"]
    assert lines[3].endswith("100.0 s")
    assert "gate failed: fd_ratio 3.1 > 1.6" in lines[4]
    assert "pipeline total" in lines[5] and "FAILURE" in lines[5]
    assert len(lines) == 6  # nothing else: DEBUG events and task output stay in the log


def test_run_logged_keeps_everything_in_the_log_and_returns_json(tmp_path):
    log = tmp_path / "run" / "m.log"
    script = (
        "import sys\n"
        "print('2026-11-01: accepted', file=sys.stderr)\n"
        "print('noise')\n"
        "print('{\"ok\": 1}')\n"
        "sys.exit(3)\n"
    )
    out = io.StringIO()
    code, json_lines = run_logged(
        [sys.executable, "-c", script], log, StageRenderer(out, total_partitions=1)
    )
    assert code == 3
    assert json_lines == ['{"ok": 1}\n']
    text = log.read_text()
    assert "2026-11-01: accepted" in text and "noise" in text
    assert out.getvalue() == ""  # no Dagster job ran, so no stage line
    assert tail(log, 1) == ['{"ok": 1}']


def test_verbose_echoes_every_line(tmp_path):
    echo = io.StringIO()
    run_logged(
        [sys.executable, "-c", "print('a'); print('b')"], tmp_path / "v.log", None, echo=echo
    )
    assert echo.getvalue() == "a\nb\n"
