"""The compaction processes of the prediction log: `python -m genline.serving.compactor`.

`compact DIR` compacts the pending spool segments of DIR once (genline.serving.store.compact) and
prints the counts as JSON; `watch DIR PARENT_PID INTERVAL_S` compacts every INTERVAL_S seconds
while PARENT_PID lives, then once more. The spool writer starts these (genline.serving.spool):
the backend stub cannot load pyarrow and pandas itself.
"""

from __future__ import annotations

import fcntl
import json
import time
from pathlib import Path

from genline.procutil import pid_alive
from genline.serving.store import compact


def watch(directory: str | Path, parent_pid: int, interval_s: float) -> int:
    """Compact `directory` every `interval_s` while `parent_pid` lives, then once more.

    Only one watcher per directory runs (it holds `.watcher.lock`); others exit at once.

    Returns:
        The exit code (0).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".watcher.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0
        while True:
            alive = pid_alive(parent_pid)
            try:
                compact(directory, wait=not alive)
            except Exception as exc:  # report and keep going: the spool keeps everything
                print(f"genline predlog watcher: compaction failed: {exc!r}", flush=True)
            if not alive:
                return 0
            time.sleep(interval_s)


def main(argv: list[str] | None = None) -> int:
    """`python -m genline.serving.compactor compact DIR | watch DIR PARENT_PID INTERVAL_S`."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 2 and args[0] == "compact":
        print(json.dumps(compact(args[1], wait=True)))
        return 0
    if len(args) == 4 and args[0] == "watch":
        return watch(args[1], int(args[2]), float(args[3]))
    print(
        "usage: python -m genline.serving.compactor compact DIR | watch DIR PID INTERVAL_S",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
