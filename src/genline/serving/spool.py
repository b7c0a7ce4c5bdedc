"""The prediction-log spool: what the serving process writes, one JSON line per response.

Runs inside Triton's python backend (see docs/serving.md). Every response (success or failure)
becomes one JSON line; a batch's lines are appended with a single `os.write` to this instance's
open segment (`<dir>/spool/<t>-<pid>-<instance>.open.jsonl`, O_APPEND). It lands in the kernel's
page cache before the response is returned, so a killed server loses nothing; a background thread
fsyncs it every `flush_s` for power-loss durability. Every `rotate_s` the segment is closed and
renamed `.ready.jsonl` for the store (`genline.serving.store`) to compact. Nothing heavier is on
the request path: no Parquet, no evaluator.

numpy only at import time: the backend stub's embedded Python cannot load everything the store
needs, which is why compaction runs in a separate process (`python -m genline.serving.store`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

SPOOL = "spool"
OPEN_SUFFIX = ".open.jsonl"
READY_SUFFIX = ".ready.jsonl"
DIR_ENV = "GENLINE_PREDLOG_DIR"
STORE_MODULE = "genline.serving.compactor"  # `python -m` entry of the compaction processes


def default_dir() -> Path:
    """`$GENLINE_PREDLOG_DIR`, else `<state>/predictions` (read at call time)."""
    env = os.environ.get(DIR_ENV)
    if env:
        return Path(env).expanduser().resolve()
    from genline.paths import state_dir

    return state_dir() / "predictions"


class SpoolWriter:
    """Appends request records to a spool segment; rotates and compacts in a background thread.

    Args:
        directory: prediction-log directory (spool/ and store/ live under it).
        header: written as the first line of every segment (model, version, evaluator path, ...).
        flush_s: fsync interval of the open segment.
        rotate_s: how often the open segment is sealed and compacted.
        compact: run compaction in the background thread (off the request path).
    """

    def __init__(
        self,
        directory: str | Path,
        header: dict[str, Any],
        *,
        flush_s: float = 1.0,
        rotate_s: float = 10.0,
        max_bytes: int = 8 << 20,
        compact: bool = True,
    ):
        self.directory = Path(directory)
        self.spool = self.directory / SPOOL
        self.spool.mkdir(parents=True, exist_ok=True)
        self.header = dict(header)
        self.flush_s = flush_s
        self.rotate_s = rotate_s
        self.max_bytes = max_bytes
        self.compact_enabled = compact
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._opened = 0.0
        self._bytes = 0
        self._dirty = False
        self._stop = threading.Event()
        self._child = None
        self._records = 0
        self._open_segment()
        self._thread = threading.Thread(target=self._loop, name="genline-predlog", daemon=True)
        self._thread.start()
        if compact:
            self._spawn_compactor()  # also picks up what a killed predecessor left behind

    def _open_segment(self) -> None:
        inst = str(self.header.get("instance", "0")).replace("/", "_").replace(" ", "_")
        name = f"{time.time_ns()}-{os.getpid()}-{inst}{OPEN_SUFFIX}"
        self._path = self.spool / name
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        line = json.dumps({"header": self.header, "segment": name}, separators=(",", ":")) + "\n"
        os.write(self._fd, line.encode())
        self._opened = time.monotonic()
        self._bytes = len(line)

    def write(self, record: dict[str, Any]) -> None:
        """Append one request record (one line, one write syscall)."""
        self.write_many([record])

    def write_many(self, records: list[dict[str, Any]]) -> None:
        """Append the records of one batch: one line each, all in one write syscall.

        Every record is encoded before anything is written. A record that cannot be encoded is
        left out and named in the ValueError raised after the others are written, so it costs
        only itself, and nothing is ever written twice.
        """
        lines, bad = [], []
        for r in records:
            try:
                lines.append(json.dumps(r, separators=(",", ":"), default=_json_default) + "\n")
            except (TypeError, ValueError) as exc:
                bad.append(f"{r.get('request_id') if isinstance(r, dict) else '?'}: {exc}")
        if lines:
            data = "".join(lines).encode()
            with self._lock:
                if self._fd is None:
                    raise RuntimeError("prediction log is closed")
                written = os.write(self._fd, data)
                while written < len(data):  # a short write (signal): finish the lines
                    written += os.write(self._fd, data[written:])
                self._bytes += len(data)
                self._records += len(lines)
                self._dirty = True
        if bad:
            raise ValueError(f"{len(bad)} record(s) not logged: {'; '.join(bad)}")

    def _rotate_locked(self) -> Path | None:
        if self._fd is None:
            return None
        os.fsync(self._fd)
        os.close(self._fd)
        old = self._path
        self._fd = None
        ready = old.with_name(old.name[: -len(OPEN_SUFFIX)] + READY_SUFFIX)
        os.replace(old, ready)
        return ready

    def rotate(self) -> None:
        """Seal the open segment (`.ready.jsonl`) and open a new one, unless it holds no record."""
        with self._lock:
            if not self._records:
                return  # nothing but the header: keep the segment open
            self._rotate_locked()
            self._open_segment()
            self._records = 0
            self._dirty = False

    def _loop(self) -> None:
        last_flush = time.monotonic()
        while not self._stop.wait(min(self.flush_s, 0.5)):
            try:
                now = time.monotonic()
                if now - last_flush >= self.flush_s:
                    with self._lock:
                        if self._fd is not None and self._dirty:
                            os.fsync(self._fd)
                    last_flush = now
                if now - self._opened >= self.rotate_s or self._bytes >= self.max_bytes:
                    self.rotate()
                    self._opened = now  # next check in rotate_s, records or not
                    if self.compact_enabled:
                        self._spawn_compactor()
            except Exception as exc:  # never let logging kill serving; say so in the server log
                print(f"genline predlog: background error: {exc!r}", flush=True)

    def _spawn_compactor(self) -> None:
        """Make sure a compaction watcher runs for this directory (a separate process).

        The backend stub embeds its own libpython, which cannot load some of the interpreter's
        stdlib extension modules (e.g. _ssl) that pyarrow and pandas pull in; a child running the
        venv's real interpreter can, and it keeps Parquet and evaluator work out of the serving
        process. One watcher per directory (it holds `.watcher.lock`); it compacts every
        `rotate_s` and exits after a last pass once the process that started it is gone.
        """
        import subprocess
        import sys

        if self._child is not None and self._child.poll() is None:
            return
        self._child = subprocess.Popen(
            [
                _real_python(),
                "-m",
                STORE_MODULE,
                "watch",
                str(self.directory),
                str(os.getpid()),
                str(self.rotate_s),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=sys.stderr,
            start_new_session=True,
        )

    def close(self, compact_now: bool = True) -> None:
        """Seal the open segment, stop this writer's watcher, and (optionally) hand the rest to
        a detached one-shot compaction, so a model unload never waits for Parquet."""
        import subprocess
        import sys

        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            self._rotate_locked()
        if self._child is not None and self._child.poll() is None:
            self._child.terminate()
            try:
                self._child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._child.kill()
        if compact_now and self.compact_enabled:
            subprocess.Popen(
                [_real_python(), "-m", STORE_MODULE, "compact", str(self.directory)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=sys.stderr,
                start_new_session=True,
            )


def _real_python() -> str:
    """The venv's interpreter (inside the Triton stub, sys.executable already points there)."""
    import shutil
    import sys

    exe = sys.executable
    if exe and Path(exe).name.startswith("python") and Path(exe).exists():
        return exe
    return shutil.which("python3") or "python3"


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# --- segments, as the store sees them -------------------------------------------------------


def _writer_alive(segment: Path) -> bool:
    try:
        pid = int(segment.name.split("-")[1])
    except (IndexError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def pending_segments(directory: str | Path) -> list[Path]:
    """Sealed segments plus open ones whose writer process is gone (a killed server)."""
    spool = Path(directory) / SPOOL
    if not spool.is_dir():
        return []
    out = sorted(spool.glob(f"*{READY_SUFFIX}"))
    out += sorted(p for p in spool.glob(f"*{OPEN_SUFFIX}") if not _writer_alive(p))
    return out


def live_segments(directory: str | Path) -> list[Path]:
    """Open segments (of running writers, or of dead ones not yet compacted), oldest first."""
    spool = Path(directory) / SPOOL
    return sorted(spool.glob(f"*{OPEN_SUFFIX}")) if spool.is_dir() else []


def sealed_segments(directory: str | Path) -> list[Path]:
    """Sealed segments waiting for compaction, oldest first."""
    spool = Path(directory) / SPOOL
    return sorted(spool.glob(f"*{READY_SUFFIX}")) if spool.is_dir() else []


def read_segment(path: Path) -> tuple[dict, list[dict], int]:
    """(header, records, malformed line count). A torn last line (killed mid-write) is skipped."""
    header: dict = {}
    records: list[dict] = []
    bad = 0
    with open(path, "rb") as fh:
        for i, raw in enumerate(fh):
            try:
                obj = json.loads(raw)
            except ValueError:
                bad += 1
                continue
            if i == 0 and "header" in obj:
                header = obj["header"]
            else:
                records.append(obj)
    return header, records, bad
