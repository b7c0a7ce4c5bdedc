"""Named crash points for crash-safety tests.

Code that must survive a kill at a given moment calls `kill_point("publish.after_rename")` there.
When the environment variable GENLINE_KILL_AT names that point (a comma-separated list may name
several), the process sends itself SIGKILL on the spot: no `finally`, no `atexit`, exactly what a
power cut or the OOM killer does. Tests run the real command in a subprocess with the variable set,
then rerun it without and assert that the state is consistent. Unset (always, in production) a
call costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "GENLINE_KILL_AT"


def kill_point(name: str) -> None:
    """SIGKILL this process if $GENLINE_KILL_AT names `name` (read at call time)."""
    wanted = os.environ.get(ENV)
    if wanted and name in {w.strip() for w in wanted.split(",")}:
        os.kill(os.getpid(), signal.SIGKILL)
