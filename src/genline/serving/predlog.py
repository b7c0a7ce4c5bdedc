"""Durable prediction logging: a spool written by the serving process, compacted to Parquet.

Design (see docs/serving.md):

1. Inside Triton's python backend, every response (success or failure) becomes one JSON line
   appended with a single `os.write` to this instance's open spool segment
   (`<dir>/spool/<t>-<pid>-<instance>.open.jsonl`, O_APPEND). That write lands in the kernel's
   page cache before the response is returned, so a killed server loses nothing; a background
   thread fsyncs it every `flush_s` for power-loss durability. Nothing heavier is on the request
   path: no Parquet, no evaluator.
2. Every `rotate_s` the segment is closed and renamed `.ready.jsonl`. The compactor (the same
   background thread, `genline predictions`-style callers, and server start/stop) takes ready
   segments -- and open segments whose writer pid is dead -- runs the evaluator ONNX over their
   images in one batch (predicted class and confidence), and writes one Parquet file per
   (segment, hour) under `<dir>/store/date=YYYY-MM-DD/hour=HH/part-<segment>.parquet`
   (temp file + fsync + rename), then deletes the segment.
3. At-least-once: a segment is deleted only after its Parquet files are durable; compaction of
   the same segment again rewrites the same file names, and readers deduplicate by
   (request_id, sample_index), so a crash anywhere never loses or doubles a record.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import threading
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from genline.procutil import pid_alive

SPOOL = "spool"
STORE = "store"
OPEN_SUFFIX = ".open.jsonl"
READY_SUFFIX = ".ready.jsonl"

COLUMNS = [
    "request_id",
    "sample_index",
    "request_batch",
    "time",
    "model",
    "version",
    "status",
    "error",
    "label",
    "seed",
    "z_mean",
    "z_std",
    "z_norm",
    "mean_intensity",
    "ink_fraction",
    "pred_class",
    "pred_confidence",
    "latency_ms",
    "instance",
]


def default_dir() -> Path:
    """`$GENLINE_PREDLOG_DIR`, else `<state>/predictions` (read at call time)."""
    env = os.environ.get("GENLINE_PREDLOG_DIR")
    if env:
        return Path(env).expanduser().resolve()
    from genline.paths import state_dir

    return state_dir() / "predictions"


# --------------------------------------------------------------------------------------------
# the writer (runs inside the Triton python-backend stub)
# --------------------------------------------------------------------------------------------


def encode_images(images: np.ndarray) -> str:
    """(B, C, H, W) float32 -> base64 of float16 bytes (compact; plenty for features)."""
    return base64.b64encode(np.ascontiguousarray(images, dtype=np.float16).tobytes()).decode()


def decode_images(text: str, shape: list[int]) -> np.ndarray:
    raw = np.frombuffer(base64.b64decode(text), dtype=np.float16)
    return raw.reshape([-1, *shape]).astype(np.float32)


def summarize(labels: np.ndarray, z: np.ndarray, images: np.ndarray) -> dict[str, list]:
    """Per-sample summaries computed on the request path (vectorised, microseconds)."""
    flat = images.reshape(len(images), -1)
    return {
        "label": labels.astype(np.int64).tolist(),
        "z_mean": z.mean(axis=1).round(5).tolist(),
        "z_std": z.std(axis=1).round(5).tolist(),
        "z_norm": np.linalg.norm(z, axis=1).round(4).tolist(),
        "mean_intensity": flat.mean(axis=1).round(5).tolist(),
        "ink_fraction": (flat > 0.5).mean(axis=1).round(5).tolist(),
    }


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
        data = (json.dumps(record, separators=(",", ":"), default=_json_default) + "\n").encode()
        with self._lock:
            if self._fd is None:
                raise RuntimeError("prediction log is closed")
            os.write(self._fd, data)
            self._bytes += len(data)
            self._records += 1
            self._dirty = True

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
                "genline.serving.predlog",
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
                [_real_python(), "-m", "genline.serving.predlog", "compact", str(self.directory)],
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


# --------------------------------------------------------------------------------------------
# compaction (spool -> hourly Parquet)
# --------------------------------------------------------------------------------------------


@contextmanager
def _compaction_lock(directory: Path, wait: bool):
    directory.mkdir(parents=True, exist_ok=True)
    fh = open(directory / ".compact.lock", "a")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        fh.close()


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


class _Evaluators:
    """Evaluator ONNX sessions by path, loaded lazily (None when the file is gone)."""

    def __init__(self):
        self._sessions: dict[str, Any] = {}

    def get(self, path: str | None):
        if not path:
            return None
        if path not in self._sessions:
            sess = None
            if Path(path).is_file():
                import onnxruntime as ort

                so = ort.SessionOptions()
                so.intra_op_num_threads = 1
                so.add_session_config_entry("session.intra_op.allow_spinning", "0")
                sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            self._sessions[path] = sess
        return self._sessions[path]


def _eval_predictions(sess, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from genline import contract

    logits = sess.run([contract.EVAL_LOGITS], {contract.EVAL_INPUT: images})[0]
    logits = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    return probs.argmax(axis=1), probs.max(axis=1)


def expand(header: dict, records: list[dict], evaluators: _Evaluators) -> list[dict]:
    """Request records -> one row per sample (failed requests: one row, sample_index -1)."""
    rows: list[dict] = []
    sess = evaluators.get(header.get("evaluator"))
    shape = header.get("image_shape")
    ok_imgs: list[np.ndarray] = []
    ok_rows: list[list[dict]] = []
    for rec in records:
        base = {
            "request_id": str(rec.get("request_id", "")),
            "request_batch": int(rec.get("batch", 0) or 0),
            "time": float(rec["time"]),
            "model": header.get("model"),
            "version": int(rec.get("version", header.get("version", -1))),
            "status": rec.get("status", "UNKNOWN"),
            "error": rec.get("error"),
            "seed": rec.get("seed"),
            "latency_ms": rec.get("latency_ms"),
            "instance": header.get("instance"),
        }
        labels = rec.get("label") or []
        if rec.get("status") != "OK" or not labels:
            rows.append({**base, "sample_index": -1})
            continue
        these = []
        for i in range(len(labels)):
            row = {**base, "sample_index": i, "label": int(labels[i])}
            for key in ("z_mean", "z_std", "z_norm", "mean_intensity", "ink_fraction"):
                vals = rec.get(key)
                row[key] = float(vals[i]) if vals is not None else None
            these.append(row)
        rows.extend(these)
        if sess is not None and shape and rec.get("images"):
            ok_imgs.append(decode_images(rec["images"], shape))
            ok_rows.append(these)
    if ok_imgs:
        images = np.concatenate(ok_imgs)
        cls, conf = _eval_predictions(sess, images)
        flat = [r for group in ok_rows for r in group]
        for row, c, p in zip(flat, cls.tolist(), conf.tolist(), strict=True):
            row["pred_class"] = int(c)
            row["pred_confidence"] = round(float(p), 5)
    return rows


def _frame(rows: list[dict]):
    import pandas as pd

    df = pd.DataFrame(rows)
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = None
    df = df[COLUMNS]
    df = df.astype(
        {
            "request_id": "string",
            "sample_index": "int64",
            "request_batch": "int64",
            "time": "float64",
            "version": "int64",
            "status": "string",
            "label": "Int64",
            "pred_class": "Int64",
            "seed": "Int64",
        }
    )
    for col in (
        "z_mean",
        "z_std",
        "z_norm",
        "mean_intensity",
        "ink_fraction",
        "pred_confidence",
        "latency_ms",
    ):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    for col in ("model", "error", "instance"):
        df[col] = df[col].astype("string")
    return df


def _write_parquet_atomic(df, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    table = pa.Table.from_pandas(df, preserve_index=False)
    try:
        pq.write_table(table, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def partition_of(ts: float) -> tuple[str, str]:
    t = datetime.fromtimestamp(ts, UTC)
    return t.strftime("%Y-%m-%d"), t.strftime("%H")


def compact(directory: str | Path | None = None, *, wait: bool = True) -> dict[str, int]:
    """Turn pending spool segments into hourly Parquet files; idempotent and crash-safe.

    Returns:
        Counts: segments, requests, rows written, malformed (torn) lines skipped.
    """
    directory = Path(directory) if directory is not None else default_dir()
    stats = {"segments": 0, "requests": 0, "rows": 0, "malformed": 0}
    with _compaction_lock(directory, wait) as locked:
        if not locked:
            return stats
        evaluators = _Evaluators()
        for segment in pending_segments(directory):
            header, records, bad = read_segment(segment)
            stats["malformed"] += bad
            rows = expand(header, records, evaluators) if records else []
            by_hour: dict[tuple[str, str], list[dict]] = defaultdict(list)
            for row in rows:
                by_hour[partition_of(row["time"])].append(row)
            stem = segment.name.split(".")[0]
            for (day, hour), part in by_hour.items():
                df = _frame(part).drop_duplicates(["request_id", "sample_index"], keep="last")
                dest = directory / STORE / f"date={day}" / f"hour={hour}" / f"part-{stem}.parquet"
                _write_parquet_atomic(df, dest)
                stats["rows"] += len(df)
            stats["requests"] += len(records)
            stats["segments"] += 1
            segment.unlink(missing_ok=True)
    return stats


def read_predictions(
    directory: str | Path | None = None,
    *,
    compact_first: bool = True,
    include_live: bool = True,
    since: float | None = None,
):
    """All logged predictions as a DataFrame, one row per (request_id, sample_index).

    Args:
        directory: prediction-log dir (default `default_dir()`).
        compact_first: compact pending spool segments before reading.
        include_live: also read (without consuming) the open segments of running writers, so
            nothing already answered is invisible while it waits for its Parquet file.
        since: only rows with `time >= since` (epoch seconds).
    """
    import pandas as pd
    import pyarrow.parquet as pq

    directory = Path(directory) if directory is not None else default_dir()
    if compact_first:
        compact(directory, wait=True)
    files = sorted((directory / STORE).glob("date=*/hour=*/part-*.parquet"))
    frames = [pq.read_table(f).to_pandas() for f in files]
    if include_live:
        evaluators = _Evaluators()
        spool = directory / SPOOL
        for segment in sorted(spool.glob(f"*{OPEN_SUFFIX}")) if spool.is_dir() else []:
            try:
                header, records, _ = read_segment(segment)
            except FileNotFoundError:  # sealed meanwhile; its Parquet is read next time
                continue
            if records:
                frames.append(_frame(expand(header, records, evaluators)))
    frames = [f for f in frames if len(f)]
    if not frames:
        return _frame([]).iloc[0:0]
    df = pd.concat(frames, ignore_index=True)
    if since is not None:
        df = df[df["time"] >= since]
    df = df.sort_values("time", kind="stable")
    df = df.drop_duplicates(["request_id", "sample_index"], keep="last")
    return df.reset_index(drop=True)


def watch(directory: str | Path, parent_pid: int, interval_s: float) -> int:
    """Compact `directory` every `interval_s` while `parent_pid` lives, then once more.

    Only one watcher per directory runs (it holds `.watcher.lock`); others exit at once.
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
    """`python -m genline.serving.predlog compact DIR | watch DIR PARENT_PID INTERVAL_S`."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 2 and args[0] == "compact":
        print(json.dumps(compact(args[1], wait=True)))
        return 0
    if len(args) == 4 and args[0] == "watch":
        return watch(args[1], int(args[2]), float(args[3]))
    print(
        "usage: python -m genline.serving.predlog compact DIR | watch DIR PID INTERVAL_S",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
