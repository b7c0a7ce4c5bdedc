"""The prediction-log spool and its compaction, without a server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import onnx_fixture
import pandas as pd
import pytest

from genline import contract
from genline.serving import features, spool, store


def record(rid, n=2, t=None, status="OK", seed=0):
    rng = np.random.default_rng(seed)
    labels, z = np.arange(n) % 10, rng.standard_normal((n, 64)).astype(np.float32)
    images = rng.random((n, 1, 8, 8)).astype(np.float32)
    rec = {
        "request_id": rid,
        "time": t or time.time(),
        "version": 3,
        "status": status,
        "error": None if status == "OK" else "bad",
        "seed": seed,
        "latency_ms": 0.5,
        "batch": n,
    }
    if status == "OK":
        rec.update(features.summarize(labels, z, images))
        rec["images"] = features.encode_images(images)
    return rec


@pytest.fixture
def evaluator(tmp_path):
    return onnx_fixture.make_model_dir(tmp_path / "m") / contract.EVALUATOR_ONNX


def writer(d, evaluator, **kw):
    return spool.SpoolWriter(
        d,
        {
            "model": "g",
            "version": 3,
            "instance": "i0",
            "evaluator": str(evaluator),
            "image_shape": [1, 8, 8],
        },
        compact=False,
        **kw,
    )


def test_records_become_hourly_parquet_with_features(tmp_path, evaluator):
    w = writer(tmp_path, evaluator)
    t0 = 1_800_000_000.0  # a fixed hour boundary check
    w.write(record("a", 2, t=t0 - 10))
    w.write(record("b", 3, t=t0 + 3600))
    w.write(record("c", status="INVALID_ARGUMENT", t=t0 + 3600))
    w.close(compact_now=False)
    stats = store.compact(tmp_path)
    assert stats == {"segments": 1, "requests": 3, "rows": 6, "malformed": 0}
    parts = sorted((tmp_path / store.STORE).glob("date=*/hour=*/*.parquet"))
    assert len({p.parent for p in parts}) == 2  # two hours -> two partitions
    df = store.read_predictions(tmp_path)
    assert list(df.columns) == features.COLUMNS
    assert len(df) == 6 and set(df.request_id) == {"a", "b", "c"}
    ok = df[df.status == "OK"]
    assert ok.pred_class.notna().all() and ok.pred_confidence.between(0, 1).all()
    bad = df[df.request_id == "c"]
    assert bad.sample_index.tolist() == [-1] and bad.label.isna().all()
    assert not list((tmp_path / spool.SPOOL).glob("*.jsonl"))


def test_compaction_is_idempotent_and_reads_deduplicate(tmp_path, evaluator):
    w = writer(tmp_path, evaluator)
    w.write(record("a"))
    w.write(record("a"))  # a client retry with the same id
    w.close(compact_now=False)
    seg = next((tmp_path / spool.SPOOL).glob("*.ready.jsonl"))
    backup = tmp_path / "seg.bak"
    shutil.copy(seg, backup)
    store.compact(tmp_path)
    shutil.copy(backup, seg)  # as if we crashed after writing Parquet, before deleting the segment
    store.compact(tmp_path)
    df = store.read_predictions(tmp_path)
    assert len(df) == 2 and sorted(df.sample_index) == [0, 1]


def test_torn_last_line_and_dead_writer_segment(tmp_path, evaluator):
    # a writer in another process that is SIGKILLed after three records and a torn fourth
    code = f"""
import os, sys, json
sys.path.insert(0, {str(os.path.dirname(__file__))!r})
from test_predlog_unit import record
from genline.serving import spool
w = spool.SpoolWriter({str(tmp_path)!r}, {{"model": "g", "version": 3, "instance": "k",
    "evaluator": None, "image_shape": [1, 8, 8]}}, compact=False, flush_s=100, rotate_s=100)
for i in range(3):
    w.write(record(f"k{{i}}"))
os.write(w._fd, b'{{"request_id": "torn", "ti')
os.kill(os.getpid(), 9)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    open_segs = list((tmp_path / spool.SPOOL).glob("*.open.jsonl"))
    assert len(open_segs) == 1 and spool.pending_segments(tmp_path) == open_segs
    stats = store.compact(tmp_path)
    assert stats["requests"] == 3 and stats["malformed"] == 1
    df = store.read_predictions(tmp_path)
    assert set(df.request_id) == {"k0", "k1", "k2"}
    assert df.pred_class.isna().all()  # no evaluator recorded: features left empty, not invented


def test_open_segment_of_a_live_writer_is_left_alone(tmp_path, evaluator):
    w = writer(tmp_path, evaluator)
    w.write(record("live"))
    assert spool.pending_segments(tmp_path) == []
    assert store.compact(tmp_path)["segments"] == 0
    w.close(compact_now=False)
    assert store.compact(tmp_path)["requests"] == 1


def test_rotation_and_background_compaction(tmp_path, evaluator):
    w = spool.SpoolWriter(
        tmp_path,
        {
            "model": "g",
            "version": 3,
            "instance": "i",
            "evaluator": str(evaluator),
            "image_shape": [1, 8, 8],
        },
        flush_s=0.05,
        rotate_s=0.2,
    )
    w.write(record("bg"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list((tmp_path / store.STORE).rglob("*.parquet")):
        time.sleep(0.1)
    w.close()
    df = store.read_predictions(tmp_path, compact_first=False)
    assert set(df.request_id) == {"bg"}


def test_read_empty_store(tmp_path):
    df = store.read_predictions(tmp_path)
    assert len(df) == 0 and list(df.columns) == features.COLUMNS
    assert isinstance(df, pd.DataFrame)


def test_read_window_opens_only_the_hours_it_covers(tmp_path, evaluator):
    hour = 3600.0
    t0 = (time.time() // hour - 3) * hour  # the start of an hour, three hours ago
    w = writer(tmp_path, evaluator)
    for k in range(3):  # one request in each of three consecutive hours
        w.write(record(f"h{k}", t=t0 + k * hour + 60))
    w.close(compact_now=False)
    store.compact(tmp_path)
    hours = sorted((tmp_path / store.STORE).glob("date=*/hour=*"))
    assert len(hours) == 3
    # a file the window must not open: reading it would fail
    (hours[0] / "part-corrupt.parquet").write_bytes(b"not parquet")
    df = store.read_window(t0 + hour, t0 + 2 * hour, tmp_path)
    assert set(df.request_id) == {"h1"} and len(df) == 2
    assert list(df.columns) == features.COLUMNS
    assert df.pred_class.notna().all()
    assert set(store.read_window(t0 + hour, None, tmp_path).request_id) == {"h1", "h2"}
    assert len(store.read_window(t0 + 5 * hour, None, tmp_path)) == 0
    with pytest.raises(Exception):  # noqa: B017  (pyarrow's error type for a bad file)
        store.read_window(None, None, tmp_path)


def test_log_schema_profile_and_cli_select_from_features():
    from genline.serving import profile

    assert set(features.OUTPUT_FEATURES) <= set(features.COLUMNS)
    assert set(profile.FEATURES) == set(features.DRIFT_FEATURES)  # the profile is drift's reference
    assert set(features.DRIFT_FEATURES) <= set(features.COLUMNS)
    assert list(features.DTYPES) == features.COLUMNS
    with pytest.raises(KeyError, match="not prediction-log columns"):
        features.select("label", "no_such_column")


@pytest.mark.parametrize("same_file", [True, False])
def test_embedding_columns_match_the_embedding_whether_or_not_one_pass_scores_both(
        tmp_path, evaluator, same_file):
    """Compaction takes the embedding's features from the evaluator's own pass when the
    embedding belongs to that evaluator file, and runs the embedding separately otherwise: the
    emb_* columns are the embedding's transform of the logged images either way."""
    from genline.embedding import Embedding

    rng = np.random.default_rng(1)
    Embedding.fit(evaluator, rng.random((40, 1, 8, 8)).astype(np.float32)).save(
        evaluator.parent / contract.EMBEDDING)
    scorer = evaluator
    if not same_file:  # the segment names a copy: the embedding runs its own session
        scorer = tmp_path / "copy" / contract.EVALUATOR_ONNX
        scorer.parent.mkdir()
        shutil.copy(evaluator, scorer)
    w = spool.SpoolWriter(tmp_path / "log", {
        "model": "g", "version": 3, "instance": "i0", "evaluator": str(scorer),
        "embedding": str(evaluator.parent / contract.EMBEDDING), "image_shape": [1, 8, 8]},
        compact=False)
    recs = [record(f"r{i}", 3, t=1_800_000_000.0 + i, seed=i) for i in range(4)]
    for rec in recs:
        w.write(rec)
    w.close(compact_now=False)
    store.compact(tmp_path / "log")
    df = store.read_predictions(tmp_path / "log").sort_values(["request_id", "sample_index"])
    images = np.concatenate([features.decode_images(r["images"], [1, 8, 8]) for r in recs])
    want = Embedding.load(evaluator.parent / contract.EMBEDDING).transform(images)
    got = df[list(features.EMBEDDING_FEATURES[: want.shape[1]])].to_numpy()
    np.testing.assert_allclose(got, want.round(5), atol=2e-5)
    assert df.pred_class.notna().all()


def test_a_batch_of_records_is_one_write_and_compacts_like_single_writes(tmp_path, evaluator,
                                                                         monkeypatch):
    w = writer(tmp_path, evaluator)
    writes = []
    real = os.write
    monkeypatch.setattr(spool.os, "write", lambda fd, data: writes.append(data) or real(fd, data))
    w.write_many([record("a", 2, seed=1), record("b", 1, seed=2),
                  record("c", status="CANCELLED")])
    assert len(writes) == 1 and writes[0].count(b"\n") == 3
    # a record that cannot be encoded costs only itself: its batch-mates go out in one write,
    # then the call names it
    with pytest.raises(ValueError, match=r"1 record\(s\) not logged: e: not JSON serialisable"):
        w.write_many([record("d"), {**record("e"), "seed": object()}])
    assert len(writes) == 2 and writes[1].count(b"\n") == 1
    w.write_many([])  # nothing to write: no syscall
    assert len(writes) == 2
    monkeypatch.undo()
    w.close(compact_now=False)
    assert store.compact(tmp_path)["requests"] == 4
    df = store.read_predictions(tmp_path)
    assert sorted(set(df.request_id)) == ["a", "b", "c", "d"] and len(df) == 6


def test_a_sealed_segment_not_yet_compacted_is_read_with_the_live_ones(tmp_path, evaluator):
    # the writer seals its open segment every rotate_s; a read that lands between the seal and
    # the compaction must still see what was answered (it once read open segments and Parquet
    # only, so those records were briefly invisible)
    w = writer(tmp_path, evaluator)
    w.write_many([record("sealed", 2), record("sealed-2", 1)])
    w.rotate()  # sealed, not compacted
    w.write(record("open", 1))
    df = store.read_predictions(tmp_path, compact_first=False, include_live=True)
    assert set(df.request_id) == {"sealed", "sealed-2", "open"} and len(df) == 4
    assert list((tmp_path / spool.SPOOL).glob(f"*{spool.READY_SUFFIX}"))  # read, not consumed
    w.close(compact_now=False)
    store.compact(tmp_path)
    again = store.read_predictions(tmp_path, compact_first=False, include_live=True)
    assert len(again) == 4  # once in Parquet: no duplicates
