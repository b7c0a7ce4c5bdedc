"""Process helpers shared by the background services (Triton, the Dagster UI, the log watcher)."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True while process `pid` exists and is not a zombie waiting to be reaped.

    A killed multi-threaded process shows its main thread as a zombie while its other threads
    are still exiting; its files (a server's listening sockets) close only when the last one
    has, so it counts as alive until then.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:  # a zombie child of ours counts as dead
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            if fh.read().split(")")[-1].split()[0] != "Z":
                return True
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False  # gone between the looks
