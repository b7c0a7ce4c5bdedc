"""Run every benchmark and assemble docs/benchmarks.md from their sections.

Each benchmark measures its figures side by side in one run and writes docs/benchmarks/<area>.md;
this script runs them one after another (never concurrently: 2 cores) and concatenates.

    .venv/bin/python benchmarks/run_all.py [--only training,serving] [--assemble-only]
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("training", "serving", "distill", "resolution", "data", "pipeline", "alerting",
            "drift", "loop")
# assembled into docs/benchmarks.md but run by hand (benchmarks/installs.py, ~5 min of installs)
ASSEMBLED = (*SECTIONS, "installs")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=",".join(SECTIONS))
    ap.add_argument("--assemble-only", action="store_true")
    args = ap.parse_args()
    if not args.assemble_only:
        for name in args.only.split(","):
            script = ROOT / "benchmarks" / f"{name}.py"
            print(f"== {script.name}", flush=True)
            subprocess.run([sys.executable, str(script)], check=True, cwd=ROOT)
    parts = ["# genline benchmarks", "",
             "Figures measured on a 2-core, no-GPU machine. Within each section all figures "
             "come from one run, side by side; compare ratios, not absolute times (the machine "
             "is noisy). Regenerate with `make bench`.", "",
             f"Assembled {dt.date.today().isoformat()}.", ""]
    for name in ASSEMBLED:
        path = ROOT / "docs" / "benchmarks" / f"{name}.md"
        parts.append(path.read_text() if path.exists() else
                     f"## {name}\n\nNot measured yet: run `benchmarks/{name}.py`.\n")
    (ROOT / "docs" / "benchmarks.md").write_text("\n".join(parts))
    print(f"wrote {ROOT / 'docs' / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
