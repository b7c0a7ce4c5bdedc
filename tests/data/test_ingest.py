"""Daily batches: the simulation, the drop folder, quarantine and the accepted union."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from PIL import Image

from genline import clock
from genline.alerts import read_alerts
from genline.data import DataError
from genline.ingest import (
    BATCH_FILE,
    RESULT_FILE,
    BatchStore,
    accepted_days,
    build_training_dataset,
    deliver_simulated,
    ingest_batch,
    quarantined,
    read_delivery,
    sample_grid_png,
    simulate_history,
    simulated_batches,
    simulated_day_index,
    simulation_window,
)
from genline.npzfiles import load_npz
from genline.validation import ReferenceStats

START = "2026-11-01"


def test_simulation_is_a_stratified_partition_of_the_builtin_digits(digits):
    days = simulated_batches(28)
    assert sum(len(d) for d in days) == len(digits)
    keys = {(d.images[i].tobytes(), int(d.labels[i])) for d in days for i in range(len(d))}
    assert len(keys) == len(digits)  # every image exactly once
    for d in days:  # every day has every class, in proportion
        counts = np.bincount(d.labels, minlength=10)
        assert counts.min() >= 5 and counts.max() <= 8
    again = simulated_batches(28)
    assert all(a.fingerprint == b.fingerprint for a, b in zip(days, again, strict=True))
    assert simulated_day_index("2026-11-28", START, 28) == date(2026, 11, 28).toordinal() % 28
    assert simulated_day_index("2026-11-29", START, 28) is None
    assert simulated_day_index("2026-10-31", START, 28) is None
    window = [date(2026, 11, 1) + timedelta(days=d) for d in range(28)]
    assert sorted(simulated_day_index(d, START, 28) for d in window) == list(range(28))


def test_default_window_ends_yesterday_by_the_clock(monkeypatch, state):
    """Any clock gets a full history ending yesterday; a date keeps its batch as the clock moves."""
    indices = {}
    for now in ("2027-02-10T00:30:00Z", "2031-07-04T23:59:00+00:00"):
        monkeypatch.setenv(clock.ENV, now)
        today = clock.today()
        first, last = simulation_window(28)
        assert (first, last) == (today - timedelta(days=28), today - timedelta(days=1))
        assert simulated_day_index(today, None, 28) is None  # today has not ended
        assert simulated_day_index(last, None, 28) is not None
        folders = simulate_history(BatchStore.default(), days=28)
        assert [f.name for f in folders][-1] == last.isoformat() and len(folders) == 28
        indices[now] = simulated_day_index(first + timedelta(days=5), None, 28)
    # the same date under a later clock: same batch (no drift of content with the window)
    monkeypatch.setenv(clock.ENV, "2027-02-14")  # window 01-17..02-13
    assert simulated_day_index(date(2027, 1, 18), None, 28) == indices["2027-02-10T00:30:00Z"]


def test_accept_then_union(state, batch):
    store = BatchStore.default()
    for day in ("2026-11-01", "2026-11-02"):
        assert deliver_simulated(store, day, START) is not None
        out = ingest_batch(store, day)
        assert out.accepted, out.result.summary()
        assert (store.accepted / day / BATCH_FILE).is_file()
        assert (store.accepted / day / RESULT_FILE).is_file()
    union = build_training_dataset(store)
    two = [simulated_day_index(d, START, 28) for d in ("2026-11-01", "2026-11-02")]
    assert len(union) == sum(len(simulated_batches(28)[i]) for i in two)
    assert accepted_days(store, as_of="2026-11-01") == ["2026-11-01"]
    first = simulated_batches(28)[simulated_day_index("2026-11-01", START, 28)]
    assert len(build_training_dataset(store, as_of="2026-11-01")) == len(first)


def _deliver_npz(store: BatchStore, day: str, images, labels, classes=None) -> None:
    folder = store.delivery_dir(day)
    folder.mkdir(parents=True)
    arrays = {"images": images, "labels": labels}
    if classes is not None:
        arrays["classes"] = np.array(classes)
    np.savez(folder / BATCH_FILE, **arrays)


def test_bad_batch_is_quarantined_with_result_and_alert_and_never_reaches_training(
    state, batch, digits
):
    store = BatchStore.default()
    deliver_simulated(store, "2026-11-01", START)
    assert ingest_batch(store, "2026-11-01").accepted
    # The reference is all digits: one simulated day (~64 images) is too small a reference for
    # the per-class intensity check on this 200-image batch, and only the NaN must fail here.
    ref = ReferenceStats.from_dataset(digits)
    images = batch.images.copy()
    images[0, 0, 0, 0] = np.nan
    _deliver_npz(store, "2026-11-02", images, batch.labels, batch.classes)
    out = ingest_batch(store, "2026-11-02", reference=ref)
    assert out.status == "quarantined"
    assert [c.name for c in out.result.failed_checks] == ["no_nan_or_inf"]
    assert not store.delivery_dir("2026-11-02").exists()  # moved, not copied
    assert (out.batch_path / BATCH_FILE).is_file()  # the delivery, kept as delivered
    assert out.result_path.is_file() and out.result_path.parent == out.batch_path.parent
    alerts = read_alerts()
    assert len(alerts) == 1 and alerts[0]["source"] == "data.validation"
    assert alerts[0]["details"]["failed_checks"] == ["no_nan_or_inf"]
    assert alerts[0]["alert_id"] == out.alert_id
    assert accepted_days(store) == ["2026-11-01"]
    assert len(build_training_dataset(store)) == len(
        simulated_batches(28)[simulated_day_index("2026-11-01", START, 28)]
    )
    assert quarantined(store)[0]["failed"] == ["no_nan_or_inf"]


@pytest.mark.parametrize(
    "fault",
    ["zero_byte_npz", "corrupt_npz", "corrupt_png", "zero_byte_png", "empty_folder", "stray_file"],
)
def test_unreadable_deliveries_are_quarantined(state, fault):
    store = BatchStore.default()
    folder = store.delivery_dir("2026-11-03")
    folder.mkdir(parents=True)
    if fault == "zero_byte_npz":
        (folder / BATCH_FILE).write_bytes(b"")
    elif fault == "corrupt_npz":
        (folder / BATCH_FILE).write_bytes(b"PK\x03\x04 not really a zip")
    elif fault in ("corrupt_png", "zero_byte_png"):
        (folder / "3").mkdir()
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "3" / "ok.png")
        (folder / "3" / "bad.png").write_bytes(b"" if fault == "zero_byte_png" else b"\x89PNG..")
    elif fault == "stray_file":
        (folder / "notes.txt").write_text("hello")
    out = ingest_batch(store, "2026-11-03")
    assert out.status == "quarantined"
    assert [c.name for c in out.result.checks] == ["readable"]
    assert not out.result.checks[0].passed
    assert read_alerts()[0]["details"]["failed_checks"] == ["readable"]


def test_integer_pixels_outside_0_255_are_unreadable_like_in_the_loader(state, batch):
    # One .npz parser (genline.npzfiles.read_npz) for deliveries and training files alike.
    store = BatchStore.default()
    images = (batch.images * 255).round().astype(np.int32)
    images[4, 0, 1, 1] = 300
    _deliver_npz(store, "2026-11-03", images, batch.labels, batch.classes)
    out = ingest_batch(store, "2026-11-03")
    assert out.status == "quarantined"
    assert [c.name for c in out.result.checks] == ["readable"]
    assert "integer images must be in 0-255, got 0-300" in out.result.checks[0].summary


def test_missing_delivery_is_an_error_not_a_quarantine(state):
    with pytest.raises(DataError, match="no delivery for 2026-11-04"):
        ingest_batch(BatchStore.default(), "2026-11-04")
    assert read_alerts() == []


def test_image_folder_delivery_maps_class_names(state, digits):
    store = BatchStore.default()
    folder = store.delivery_dir("2026-11-05")
    for k in range(10):
        (folder / str(k)).mkdir(parents=True)
        for j, i in enumerate(np.flatnonzero(digits.labels == k)[:4]):
            img = (digits.images[i, 0] * 255).round().astype(np.uint8)
            Image.fromarray(img).resize((32, 32)).save(folder / str(k) / f"{j}.png")
    ds = read_delivery(folder, classes=digits.classes)
    assert ds.image_shape == (1, 8, 8) and len(ds) == 40
    assert ds.classes == digits.classes
    out = ingest_batch(store, "2026-11-05", reference=ReferenceStats.from_dataset(digits))
    assert out.accepted, out.result.summary()


def test_same_batch_twice_is_idempotent(state, batch):
    store = BatchStore.default()
    deliver_simulated(store, "2026-11-01", START)
    first = ingest_batch(store, "2026-11-01")
    bytes1 = (store.accepted / "2026-11-01" / BATCH_FILE).read_bytes()
    second = ingest_batch(store, "2026-11-01")
    assert second.accepted and second.delivery_sha256 == first.delivery_sha256
    assert (store.accepted / "2026-11-01" / BATCH_FILE).read_bytes() == bytes1
    # The same content delivered on another day adds no rows.
    day1 = load_npz(store.accepted / "2026-11-01" / BATCH_FILE)
    _deliver_npz(store, "2026-11-02", day1.images, day1.labels, day1.classes)
    before = build_training_dataset(store, as_of="2026-11-01")
    assert ingest_batch(store, "2026-11-02").accepted
    after = build_training_dataset(store)
    assert len(after) == len(before) and after.fingerprint == before.fingerprint


def test_sample_grid_is_a_png_with_a_row_per_class(digits):
    png = sample_grid_png(digits, per_class=5, scale=2)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import io

    img = Image.open(io.BytesIO(png))
    assert img.size == (5 * 8 * 2, 10 * 8 * 2)
