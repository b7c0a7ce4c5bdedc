"""Style-shifted deliveries: valid digits drawn differently are accepted (and flagged), while
invalid deliveries still quarantine."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pytest
from click.testing import CliRunner

from genline.data import DataError, Dataset, row_hashes
from genline.ingest import (
    BATCH_FILE,
    BatchStore,
    apply_style,
    build_training_dataset,
    ingest_batch,
    simulate_history,
    simulated_batches,
    styled,
)
from genline.npzfiles import load_npz
from genline.validation import ReferenceStats, validate_dataset


@pytest.mark.parametrize("style", ["thick", "slant"])
def test_a_style_is_a_real_change_of_valid_digits(batch, style):
    out = apply_style(batch.images, style)
    assert out.shape == batch.images.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0 and np.isfinite(out).all()
    changed = np.abs(out - batch.images).reshape(len(out), -1).max(axis=1) > 0.1
    assert changed.mean() > 0.9  # nearly every image is drawn differently
    restyled = styled(batch, style)
    assert np.array_equal(restyled.labels, batch.labels) and restyled.classes == batch.classes
    assert restyled.source.endswith(f"@{style}")


def test_thick_strokes_carry_more_ink_and_slant_moves_it(batch):
    thick = apply_style(batch.images, "thick")
    assert thick.mean() > 1.4 * batch.images.mean()
    assert (thick >= batch.images - 1e-6).all()  # a dilation only adds ink
    slant = apply_style(batch.images, "slant")
    # The same amount of ink (within interpolation loss), leaning: the top rows move right.
    assert abs(slant.mean() - batch.images.mean()) < 0.05 * batch.images.mean()
    cols = np.arange(8)
    top = lambda im: (im[:, 0, :3].sum(1) * cols).sum() / im[:, 0, :3].sum()  # noqa: E731
    assert top(slant) > top(batch.images) + 0.3


def test_unknown_style_is_an_error_naming_it(batch, state):
    with pytest.raises(DataError, match="unknown style 'bold'"):
        apply_style(batch.images, "bold")
    store = BatchStore.default()
    with pytest.raises(DataError, match="unknown style 'bold'"):
        simulate_history(store, style="bold", last=2)
    assert not store.incoming.exists() or not any(store.incoming.iterdir())


@pytest.mark.parametrize("style", ["thick", "slant"])
def test_a_new_style_passes_validation_and_only_warns(digits, batch, style):
    result = validate_dataset(styled(batch, style), reference=ReferenceStats.from_dataset(digits))
    assert result.success, result.summary()
    assert result.failed_checks == []
    if style == "thick":  # strokes add ink: the reference intensity comparison warns
        assert [c.name for c in result.warned_checks] == ["class_intensity_matches_reference"]
        assert "accepted with warnings" in result.summary()
        assert result.to_dict()["warned"] == ["class_intensity_matches_reference"]


def test_simulate_last_days_in_a_style_cli(state):
    from genline.cli import cli as main

    res = CliRunner().invoke(main, ["data", "simulate", "--style", "thick", "--last", "3"])
    assert res.exit_code == 0, res.output
    assert "3 daily deliveries (2026-11-26..2026-11-28, style thick)" in res.output
    store = BatchStore.default()
    days = sorted(p.name for p in store.incoming.iterdir())
    assert days == ["2026-11-26", "2026-11-27", "2026-11-28"]
    delivered = load_npz(store.delivery_dir("2026-11-28") / BATCH_FILE)
    plain = simulated_batches(28)[date(2026, 11, 28).toordinal() % 28]
    want = styled(plain, "thick")  # the same digits and labels, drawn thick (order canonical)
    got_rows = sorted(zip(row_hashes(delivered.images), delivered.labels.tolist(), strict=True))
    want_rows = sorted(zip(row_hashes(want.images), want.labels.tolist(), strict=True))
    assert got_rows == want_rows
    bad = CliRunner().invoke(main, ["data", "simulate", "--last", "40"])
    assert bad.exit_code != 0 and "last must be in 1..28" in bad.output


def test_thick_delivery_is_accepted_and_a_corrupt_one_still_quarantines(state, digits):
    store = BatchStore.default()
    simulate_history(store, last=26)  # 2026-11-03..28 plain
    simulate_history(store, style="thick", last=28)  # only the two free days get thick
    reference = ReferenceStats.from_dataset(digits)
    thick = ingest_batch(store, "2026-11-01", reference=reference, alert_sink=state / "alerts")
    assert thick.accepted, thick.result.summary()
    saved = json.loads(thick.result_path.read_text())
    assert saved["status"] == "accepted" and saved["warned"] == [
        "class_intensity_matches_reference"
    ]
    ds = build_training_dataset(store)
    assert ds.images.mean() > 1.4 * simulated_batches(28)[0].images.mean()

    corrupt = simulated_batches(28)[5]
    images = corrupt.images.copy()
    images[3, 0, 2, 2] = np.nan
    folder = store.delivery_dir("2026-11-02")
    for f in folder.iterdir():
        f.unlink()
    np.savez(folder / BATCH_FILE, images=images, labels=corrupt.labels,
             classes=np.array(corrupt.classes))
    bad = ingest_batch(store, "2026-11-02", reference=reference, alert_sink=state / "alerts")
    assert bad.status == "quarantined"
    assert {c.name for c in bad.result.failed_checks} == {"no_nan_or_inf"}
    assert not (store.accepted / "2026-11-02").exists()


def test_inverted_delivery_is_a_validity_fault_not_a_style(digits, batch):
    inverted = Dataset(1.0 - batch.images, batch.labels, batch.classes, "inverted")
    result = validate_dataset(inverted, reference=ReferenceStats.from_dataset(digits))
    assert not result.success
    assert {c.name for c in result.failed_checks} == {"background_is_dark"}
    summary = result.check("background_is_dark").summary
    assert "200 of 200 images have a bright background" in summary
