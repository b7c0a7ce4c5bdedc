"""The prediction log's `source` column and the app-traffic read drift monitoring uses."""

from __future__ import annotations

import numpy as np
import onnx_fixture
import pandas as pd
import pytest

from genline import contract
from genline.serving import features, spool, store

T0 = 1_800_000_000.0  # an hour boundary (2027-01-15T08:00:00Z)


def record(rid, t, version=3, status="OK", n=2, seed=0):
    rng = np.random.default_rng(seed)
    labels, z = np.arange(n) % 10, rng.standard_normal((n, 64)).astype(np.float32)
    images = rng.random((n, 1, 8, 8)).astype(np.float32)
    rec = {"request_id": rid, "time": t, "version": version, "status": status, "batch": n}
    if status == "OK":
        rec.update(features.summarize(labels, z, images))
        rec["images"] = features.encode_images(images)
    else:
        rec["error"] = "bad input"
    return rec


@pytest.fixture
def evaluator(tmp_path):
    return onnx_fixture.make_model_dir(tmp_path / "m") / contract.EVALUATOR_ONNX


def write(directory, evaluator, records):
    w = spool.SpoolWriter(
        directory,
        {
            "model": "g",
            "version": 3,
            "instance": "i0",
            "evaluator": str(evaluator),
            "image_shape": [1, 8, 8],
        },
        compact=False,
    )
    for rec in records:
        w.write(rec)
    w.close(compact_now=False)
    store.compact(directory)


@pytest.mark.parametrize(
    ("rid", "source"),
    [
        ("genline-canary-1764670000", "canary"),
        ("genline-profile-1764670000", "profile"),
        ("genline-0f3a", "app"),  # the backend's id for a request that set none
        ("my-app-17", "app"),
        ("", "app"),
        (None, "app"),
    ],
)
def test_source_of_request_ids(rid, source):
    assert features.source_of(rid) == source
    assert source in features.SOURCES


def test_canary_and_profile_rows_are_marked_and_left_out_of_app_traffic(tmp_path, evaluator):
    write(
        tmp_path,
        evaluator,
        [
            record("app-1", T0 + 1),
            record(f"{features.CANARY_PREFIX}1", T0 + 2),
            record(f"{features.PROFILE_PREFIX}1", T0 + 3),
            record("app-2", T0 + 4, status="INVALID_ARGUMENT"),
            record("app-3", T0 + 5, version=4),
        ],
    )
    df = store.read_window(T0, T0 + 60, tmp_path)
    assert list(df.columns) == features.COLUMNS
    by_id = df.groupby("request_id")["source"].first().to_dict()
    assert by_id == {
        "app-1": "app",
        "app-2": "app",
        "app-3": "app",
        f"{features.CANARY_PREFIX}1": "canary",
        f"{features.PROFILE_PREFIX}1": "profile",
    }
    app = store.app_traffic(df)
    assert set(app.request_id) == {"app-1", "app-3"}  # no probes, no failed request
    assert (app.status == "OK").all() and (app.sample_index >= 0).all()
    split = store.read_app_traffic(T0, T0 + 60, tmp_path)
    assert list(split) == [3, 4]  # one frame per version that answered
    assert set(split[3].request_id) == {"app-1"} and len(split[3]) == 2
    assert set(split[4].request_id) == {"app-3"}
    assert store.read_app_traffic(T0 + 60, T0 + 120, tmp_path) == {}


def test_rows_logged_before_the_source_column_get_it_from_their_request_id(tmp_path, evaluator):
    write(
        tmp_path, evaluator, [record("app-1", T0 + 1), record(f"{features.CANARY_PREFIX}9", T0 + 2)]
    )
    for part in (tmp_path / store.STORE).rglob("*.parquet"):  # rewrite as an older log would be
        old = pd.read_parquet(part).drop(columns=["source", *features.EMBEDDING_FEATURES])
        old.to_parquet(part, index=False)
    df = store.read_window(T0, T0 + 60, tmp_path)
    assert dict(zip(df.request_id, df.source, strict=True)) == {
        "app-1": "app",
        f"{features.CANARY_PREFIX}9": "canary",
    }
    assert df[list(features.EMBEDDING_FEATURES)].isna().all().all()
    assert set(store.app_traffic(df).request_id) == {"app-1"}


def test_the_drift_features_are_log_columns():
    assert set(features.DRIFT_FEATURES) <= set(features.COLUMNS)
    assert set(features.EMBEDDING_FEATURES) <= set(features.DRIFT_FEATURES)
    assert features.DTYPES["source"] == "string"
