"""The prediction-log store: spool segments compacted into hourly Parquet, and read back.

Compaction takes sealed spool segments -- and open segments whose writer pid is dead -- runs the
evaluator ONNX over their images in one batch (predicted class and confidence), and writes one
Parquet file per (segment, hour) under
`<dir>/store/date=YYYY-MM-DD/hour=HH/part-<segment>.parquet` (temp file + fsync + rename), then
deletes the segment.

At-least-once: a segment is deleted only after its Parquet files are durable; compacting the same
segment again rewrites the same file names, and readers deduplicate by (request_id,
sample_index), so a crash anywhere never loses or doubles a record.

Reading a time window (`read_window`) opens only the hour directories that overlap it.

The compaction processes the spool writer starts (the backend stub cannot load pyarrow and pandas
itself) are genline.serving.compactor; `python -m genline.serving.store` still runs them.
"""

from __future__ import annotations

import fcntl
import functools
import math
import os
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from genline.serving import features as feat
from genline.serving.rows import expand, frame
from genline.serving.spool import (
    default_dir,
    live_segments,
    pending_segments,
    read_segment,
    sealed_segments,
)

if TYPE_CHECKING:
    import pandas as pd

STORE = "store"


def partition_of(ts: float) -> tuple[str, str]:
    """The (date, hour) partition, in UTC, of an epoch time."""
    return _hour_partition(math.floor(ts / 3600))


@functools.lru_cache(maxsize=256)
def _hour_partition(hour: int) -> tuple[str, str]:  # every row of an hour shares it
    t = datetime.fromtimestamp(hour * 3600, UTC)
    return t.strftime("%Y-%m-%d"), t.strftime("%H")


def _write_parquet_atomic(df: pd.DataFrame, path: Path) -> None:
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


# --- compaction ------------------------------------------------------------------------------


@contextmanager
def _compaction_lock(directory: Path, wait: bool) -> Iterator[bool]:
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


def compact(directory: str | Path | None = None, *, wait: bool = True) -> dict[str, int]:
    """Turn pending spool segments into hourly Parquet files; idempotent and crash-safe.

    Args:
        directory: prediction-log dir (default `spool.default_dir()`).
        wait: wait for a compaction already running; otherwise return at once without work.

    Returns:
        Counts: segments, requests, rows written, malformed (torn) lines skipped.
    """
    directory = Path(directory) if directory is not None else default_dir()
    stats = {"segments": 0, "requests": 0, "rows": 0, "malformed": 0}
    with _compaction_lock(directory, wait) as locked:
        if not locked:
            return stats
        evaluators, embeddings = feat.Evaluators(), feat.Embeddings()
        for segment in pending_segments(directory):
            header, records, bad = read_segment(segment)
            stats["malformed"] += bad
            rows = expand(header, records, evaluators, embeddings) if records else []
            by_hour: dict[tuple[str, str], list[dict]] = defaultdict(list)
            for row in rows:
                by_hour[partition_of(row["time"])].append(row)
            stem = segment.name.split(".")[0]
            for (day, hour), part in by_hour.items():
                df = frame(part).drop_duplicates(["request_id", "sample_index"], keep="last")
                dest = directory / STORE / f"date={day}" / f"hour={hour}" / f"part-{stem}.parquet"
                _write_parquet_atomic(df, dest)
                stats["rows"] += len(df)
            stats["requests"] += len(records)
            stats["segments"] += 1
            segment.unlink(missing_ok=True)
    return stats


# --- reading ---------------------------------------------------------------------------------


def _hour_dirs(store: Path, start: float | None, end: float | None) -> list[Path]:
    """The `date=/hour=` directories that can hold rows with start <= time < end."""
    first = partition_of(start) if start is not None else None
    last = partition_of(end) if end is not None else None
    out = []
    for day_dir in sorted(store.glob("date=*")):
        day = day_dir.name[len("date=") :]
        if (first and day < first[0]) or (last and day > last[0]):
            continue
        for hour_dir in sorted(day_dir.glob("hour=*")):
            key = (day, hour_dir.name[len("hour=") :])
            if (first and key < first) or (last and key > last):
                continue
            out.append(hour_dir)
    return out


def _read_store(directory: Path, start: float | None, end: float | None) -> pd.DataFrame:
    """The compacted rows with start <= time < end, reading only the overlapping hours."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    files = [str(f) for d in _hour_dirs(directory / STORE, start, end) for f in d.glob("part-*")]
    empty = frame([]).iloc[0:0]
    if not files:
        return empty
    schema = pa.Schema.from_pandas(empty, preserve_index=False)
    dataset = ds.dataset(files, schema=schema, format="parquet")
    cond = None
    if start is not None:
        cond = ds.field("time") >= start
    if end is not None:
        cond = (ds.field("time") < end) if cond is None else cond & (ds.field("time") < end)
    df = dataset.to_table(filter=cond).to_pandas()
    unmarked = df["source"].isna()
    if unmarked.any():  # written before the log had a source column
        df.loc[unmarked, "source"] = df.loc[unmarked, "request_id"].map(feat.source_of)
    return df


def _read_live(directory: Path, start: float | None, end: float | None) -> list[pd.DataFrame]:
    """Rows of the segments not yet compacted (read, not consumed), within the window.

    Open segments first, then sealed ones: a segment only moves forward (open -> sealed ->
    Parquet), so one that is sealed or compacted while this reads is found at its next stage,
    which is read after (the store last, by read_window). Overlaps are dropped by read_window.
    """
    evaluators, embeddings = feat.Evaluators(), feat.Embeddings()
    frames = []
    for segment in [*live_segments(directory), *sealed_segments(directory)]:
        try:
            header, records, _ = read_segment(segment)
        except FileNotFoundError:  # sealed meanwhile; its Parquet is read next time
            continue
        if records:
            df = frame(expand(header, records, evaluators, embeddings))
            if start is not None:
                df = df[df["time"] >= start]
            if end is not None:
                df = df[df["time"] < end]
            frames.append(df)
    return frames


def read_window(
    start: float | None,
    end: float | None,
    directory: str | Path | None = None,
    *,
    compact_first: bool = False,
    include_live: bool = False,
) -> pd.DataFrame:
    """Logged predictions with start <= time < end, one row per (request_id, sample_index).

    Only the hour partitions that overlap the window are opened.

    Args:
        start: epoch seconds, inclusive; None for no lower bound.
        end: epoch seconds, exclusive; None for no upper bound.
        directory: prediction-log dir (default `spool.default_dir()`).
        compact_first: compact pending spool segments before reading.
        include_live: also read (without consuming) the open segments of running writers.

    Returns:
        A DataFrame with `features.COLUMNS`, sorted by time.
    """
    import pandas as pd

    directory = Path(directory) if directory is not None else default_dir()
    if compact_first:
        compact(directory, wait=True)
    # not yet compacted first, the store last: what is compacted meanwhile is still found
    frames = _read_live(directory, start, end) if include_live else []
    frames.append(_read_store(directory, start, end))
    frames = [f for f in frames if len(f)]
    if not frames:
        return frame([]).iloc[0:0]
    df = pd.concat(frames, ignore_index=True)
    df = df.sort_values("time", kind="stable")
    df = df.drop_duplicates(["request_id", "sample_index"], keep="last")
    return df.reset_index(drop=True)


def app_traffic(df: pd.DataFrame) -> pd.DataFrame:
    """The rows drift monitoring reads: answered (`status == "OK"`) app requests, no canary or
    profile probes and no failed requests (their one row per request has no sample)."""
    keep = (df["status"] == "OK") & (df["source"] == "app") & (df["sample_index"] >= 0)
    return df[keep.fillna(False).astype(bool)].reset_index(drop=True)


def read_app_traffic(
    start: float, end: float, directory: str | Path | None = None, *, compact_first: bool = True
) -> dict[int, pd.DataFrame]:
    """The app traffic of a window, split by the version that answered it.

    A window that spans a publish holds rows of two versions; each is judged against its own
    reference, so they are never mixed.

    Args:
        start: epoch seconds, inclusive.
        end: epoch seconds, exclusive.
        directory: prediction-log dir (default `spool.default_dir()`).
        compact_first: compact pending spool segments before reading (open segments of running
            writers are read too, without consuming them).

    Returns:
        version -> its rows (`features.COLUMNS`), versions ascending; {} for an empty window.
    """
    window = read_window(start, end, directory, compact_first=compact_first, include_live=True)
    df = app_traffic(window)
    return {
        int(v): part.reset_index(drop=True)
        for v, part in sorted(df.groupby("version", sort=True), key=lambda kv: kv[0])
    }


def read_predictions(
    directory: str | Path | None = None,
    *,
    compact_first: bool = True,
    include_live: bool = True,
    since: float | None = None,
) -> pd.DataFrame:
    """All logged predictions (or those since a time) as a DataFrame.

    Args:
        directory: prediction-log dir (default `spool.default_dir()`).
        compact_first: compact pending spool segments before reading.
        include_live: also read (without consuming) the open segments of running writers, so
            nothing already answered is invisible while it waits for its Parquet file.
        since: only rows with `time >= since` (epoch seconds).

    Returns:
        One row per (request_id, sample_index), `features.COLUMNS`, sorted by time.
    """
    return read_window(
        since, None, directory, compact_first=compact_first, include_live=include_live
    )


if __name__ == "__main__":  # the former entry point of the compaction processes
    from genline.serving.compactor import main

    raise SystemExit(main())
