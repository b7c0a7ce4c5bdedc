"""The full loop, timed: each stage of `genline demo`, and drift detection -> retrained version
serving (goal <= 3 minutes on the built-in data). Writes docs/benchmarks/loop.md and the
"## Full loop" section of docs/benchmarks.md.

Runs `genline demo` in a fresh state directory (Triton on 8001, the Dagster UI on 3000: stop
other servers first), or renders the timeline an earlier demo wrote:

    .venv/bin/python benchmarks/loop.py [--preset ci] [--from-timeline PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "benchmarks" / "loop.md"
DOC = ROOT / "docs" / "benchmarks.md"
HEAD = "## Full loop"
# the stages between detection and the retrained version serving
DETECTION_TO_SERVING = ("alert", "retrain", "serving")


def run_demo(preset: str, home: Path) -> Path:
    """`genline demo` in `home` (its services stopped afterwards); the timeline it wrote."""
    env = {**os.environ, "GENLINE_HOME": str(home)}
    env.pop("GENLINE_NOW", None)  # the loop runs on the wall clock (minute drift windows)
    genline = [sys.executable, "-m", "genline"]
    try:
        subprocess.run([*genline, "demo", "--preset", preset], cwd=ROOT, env=env, check=False)
    finally:
        for what in ("serve", "ui"):
            subprocess.run([*genline, what, "--stop"], cwd=ROOT, env=env, check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return home / "run" / "demo-timeline.json"


def render(timeline: dict) -> str:
    events = timeline["events"]
    by = {e["stage"]: e for e in events}
    opts = timeline.get("options", {})
    lines = [
        HEAD,
        "",
        f"`genline demo` (benchmarks/loop.py) on {platform.machine()}, {os.cpu_count()} cores, "
        f"first model preset `{opts.get('preset')}`, retrain preset `finetune`, drift windows "
        f"of {opts.get('window_minutes')} min, {opts.get('new_days')} new days in the "
        f"`{opts.get('style')}` style. One run; times in seconds.",
        "",
        "| stage | started at | took | outcome |",
        "|---|---:|---:|---|",
    ]
    for e in events:
        outcome = e["outcome"].replace("|", "/")[:140]
        lines.append(f"| {e['stage']} | {e['at_s']:.1f} | {e['seconds']:.1f} | "
                     f"{'' if e['ok'] else 'FAILED: '}{outcome} |")
    lines += ["", f"Total: {timeline.get('total_s', 0):.1f} s."]
    parts = [by[s]["seconds"] for s in DETECTION_TO_SERVING if s in by and by[s]["ok"]]
    if len(parts) == len(DETECTION_TO_SERVING):
        total = sum(parts)
        verdict = "within" if total <= 180 else "over"
        lines += [
            "",
            f"Drift detection -> retrained version serving: **{total:.1f} s** ({verdict} the "
            "3-minute goal): "
            + ", ".join(f"{s} {by[s]['seconds']:.1f} s" for s in DETECTION_TO_SERVING)
            + ". Detection is the first staleness drift verdict of the serving version; "
            "alert = until the drift.stale_model alert is in the file receiver; retrain = the "
            "daemon's retrain sensor tick (minimum interval 60 s) + the training_job run "
            "(warm start, champion/challenger, publish); serving = until the registry and "
            "Triton answer with the new version.",
        ]
    else:
        lines += ["", "Drift detection -> serving: not measured (the loop did not get there)."]
    if "staleness" in by:
        lines += [
            "",
            f"New deliveries -> staleness detected: {by['staleness']['seconds']:.1f} s (the "
            "drift schedule judges each window after it ends, then the daemon launches the run).",
        ]
    return "\n".join(lines) + "\n"


def _replace_section(text: str, section: str) -> str:
    start = text.find(HEAD)
    if start < 0:
        return text.rstrip("\n") + "\n\n" + section
    end = text.find("\n## ", start + len(HEAD))
    return text[:start] + section + ("" if end < 0 else text[end + 1 :])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="ci")
    ap.add_argument("--from-timeline", type=Path, default=None)
    args = ap.parse_args()
    if args.from_timeline:
        path = args.from_timeline
    else:
        path = run_demo(args.preset, Path(tempfile.mkdtemp(prefix="genline-loop-")))
    if not path.is_file():
        print(f"no timeline at {path}: the demo did not start", file=sys.stderr)
        return 1
    section = render(json.loads(path.read_text()))
    print(section)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(section)
    DOC.write_text(_replace_section(DOC.read_text() if DOC.exists() else "", section))
    return 0


if __name__ == "__main__":
    sys.exit(main())
