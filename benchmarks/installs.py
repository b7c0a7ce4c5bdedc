"""`make setup` from an empty venv: the old resolve-from-ranges pip path vs the locked installs.

Each variant runs in its own fresh clone of HEAD under a temp dir, one after another in one
session, and writes docs/benchmarks/installs.md. Cache states are reported as they were: the
first uv run starts from whatever ~/.cache/uv held, later runs find it warm.

    python3 benchmarks/installs.py [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The Makefile's setup recipe before the lock (commit f162307), verbatim.
OLD = (
    "python3 -m venv .venv && .venv/bin/python -m pip install -q --upgrade pip && "
    ".venv/bin/python -m pip install -q -e '.[dev]'"
)
VARIANTS = [
    ("uv + lock (`make setup`)", "make -s setup"),
    ("pip, resolve ranges (old `make setup`)", OLD),
    ("uv + lock, again", "make -s setup"),
    ("pip + lock (`make setup INSTALLER=pip`)", "make -s setup INSTALLER=pip"),
]


def freeze(clone: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(clone / ".venv/bin/python"), "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    )
    pins = {}
    for line in out.stdout.splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.lower().replace("_", "-").replace(".", "-")] = version
    return pins


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="genline-installs-"))
    rows, sets = [], {}
    for i, (name, cmd) in enumerate(VARIANTS):
        clone = work / f"v{i}"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        t0 = time.perf_counter()
        r = subprocess.run(cmd, shell=True, cwd=clone, capture_output=True, text=True)
        dt = time.perf_counter() - t0
        if r.returncode:
            raise SystemExit(f"{name} failed:\n{r.stdout}\n{r.stderr}")
        sets[name] = freeze(clone)
        rows.append((name, dt))
        print(f"{name}: {dt:.1f} s", flush=True)
        if not args.keep:
            shutil.rmtree(clone)
    old = rows[1][1]
    lock = sets[VARIANTS[0][0]]
    fresh = sets[VARIANTS[1][0]]
    # uv itself is installed from requirements-uv.lock, not part of the project's set
    lock = {k: v for k, v in lock.items() if k != "uv"}
    differ = sorted(k for k in set(lock) | set(fresh) if lock.get(k) != fresh.get(k))
    lines = [
        "## Installs",
        "",
        "`make setup` from an empty venv in a fresh clone, variants one after another in "
        "one session (`benchmarks/installs.py`). 2 loaded cores; torch from the local "
        "/opt/wheels CPU wheel in every variant.",
        "",
        "| variant | seconds | speed vs the old pip path (old s / s) |",
        "|---|---|---|",
    ]
    lines += [
        f"| {n} | {t:.0f} | {old / t:.2g}x |"
        if n != VARIANTS[1][0]
        else f"| {n} | {t:.0f} | 1.0x |"
        for n, t in rows
    ]
    lines += [
        "",
        f"Resolving the ranges afresh today installed {len(fresh)} packages; "
        f"{len(differ)} differ from the lock"
        + (
            ": " + ", ".join(f"{k} {lock.get(k, '-')} -> {fresh.get(k, '-')}" for k in differ[:12])
            if differ
            else ""
        )
        + ".",
        "",
    ]
    out = ROOT / "docs" / "benchmarks" / "installs.md"
    out.write_text("\n".join(lines))
    print(out.read_text())


if __name__ == "__main__":
    main()
