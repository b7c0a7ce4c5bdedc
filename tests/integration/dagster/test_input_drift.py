"""The input side through Dagster: a valid batch of a new style is accepted with a failing WARN
check (Evidently input drift, recorded as an input_batch verdict); a corrupt batch still
quarantines, and the non-blocking check never stops a run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genline.drift_verdicts import read_verdicts
from genline.ingest import BatchStore, simulate_history, simulated_batches
from tests.integration.dagster.conftest import run_ingest, run_training_dataset

pytestmark = pytest.mark.integration

DRIFT_CHECK = "batch_matches_training_data"


def evaluations(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def material(result):
    return result.asset_materializations_for_node("incoming_batch")[-1].metadata


@pytest.fixture()
def history(defs, instance, state):
    """Two plain days ingested and versioned: the training data the new batches are checked on."""
    for day in ("2026-11-01", "2026-11-02"):
        assert run_ingest(defs, instance, day).success
    assert run_training_dataset(defs, instance).success


def test_thick_batch_is_accepted_with_a_failing_warn_check(defs, instance, state, history):
    import dagster as dg

    simulate_history(BatchStore.default(), style="thick", last=1)  # 2026-11-28, thick strokes
    result = run_ingest(defs, instance, "2026-11-28")
    assert result.success  # non-blocking: the run goes on
    meta = material(result)
    assert meta["status"].value == "accepted" and meta["input_drift"].value == "drift"
    checks = evaluations(result)
    drift = checks[DRIFT_CHECK]
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.WARN
    intensity = checks["class_intensity_matches_reference"]
    assert not intensity.passed and intensity.severity == dg.AssetCheckSeverity.WARN
    blocking = {k: e for k, e in checks.items() if e.severity == dg.AssetCheckSeverity.ERROR}
    assert blocking and all(e.passed for e in blocking.values())
    assert (BatchStore.default().accepted / "2026-11-28" / "batch.npz").is_file()

    (verdict,) = read_verdicts(monitor="input_batch")
    assert verdict.status == "drift" and verdict.window_key == "2026-11-28"
    assert "label=all/mean_intensity" in verdict.drifted
    assert verdict.reference.startswith("training_dataset ")
    assert Path(verdict.report).is_file() and verdict.report.endswith(".html")
    assert drift.metadata["report"].value == verdict.report
    # The accepted thick batch reaches the next training dataset version.
    td = run_training_dataset(defs, instance).output_for_node("training_dataset")
    assert "2026-11-28" in td["accepted_days"]


def test_plain_batch_passes_and_is_recorded_no_drift(defs, instance, state, history):
    result = run_ingest(defs, instance, "2026-11-03")
    assert result.success
    assert evaluations(result)[DRIFT_CHECK].passed
    (verdict,) = read_verdicts(monitor="input_batch")
    assert verdict.status == "no_drift" and verdict.drifted == []


def test_corrupt_batch_still_quarantines(defs, instance, state, history):
    good = simulated_batches(28)[5]
    images = good.images.copy()
    images[2, 0, 3, 3] = np.nan
    folder = BatchStore.default().delivery_dir("2026-11-05")
    folder.mkdir(parents=True)
    np.savez(folder / "batch.npz", images=images, labels=good.labels,
             classes=np.array(good.classes))
    result = run_ingest(defs, instance, "2026-11-05")
    assert not result.success  # the blocking no_nan_or_inf check fails the run
    assert material(result)["status"].value == "quarantined"
    checks = evaluations(result)
    assert not checks["no_nan_or_inf"].passed
    assert checks[DRIFT_CHECK].description.startswith("not evaluated")
    assert read_verdicts(monitor="input_batch") == []


def test_first_batch_has_nothing_to_compare_with(defs, instance, state):
    result = run_ingest(defs, instance, "2026-11-01")
    assert result.success
    check = evaluations(result)[DRIFT_CHECK]
    assert check.passed and "no training data version yet" in check.description
