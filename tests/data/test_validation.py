"""The Great Expectations suite: each fault is caught by the check named for it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genline.data import Dataset
from genline.validation import (
    CHECK_NAMES,
    ReferenceStats,
    ValidationConfig,
    ValidationResult,
    validate_dataset,
)


def failed(result: ValidationResult) -> set[str]:
    return {c.name for c in result.failed_checks}


def test_real_digits_pass_every_check(digits):
    result = validate_dataset(digits, reference=digits)
    assert result.success, result.summary()
    assert [c.name for c in result.checks] == list(CHECK_NAMES)
    assert not result.check("class_intensity_matches_reference").skipped
    assert result.stats["num_rows"] == len(digits)
    assert result.engine.startswith("great_expectations 1.")


def test_without_reference_intensity_is_skipped_not_failed(batch):
    result = validate_dataset(batch)
    assert result.success
    c = result.check("class_intensity_matches_reference")
    assert c.skipped and c.passed and "reference" in c.summary


def test_nan_inf_range_and_labels_are_named_with_rows(batch):
    images, labels = batch.images.copy(), batch.labels.copy()
    images[3, 0, 2, 2] = np.nan
    images[4, 0, 0, 0] = np.inf
    images[7, 0, 1, 1] = 1.5
    images[8, 0, 1, 1] = -0.2
    labels[5] = 12
    result = validate_dataset(Dataset(images, labels, batch.classes, "faulty"), reference=batch)
    assert not result.success
    assert {"no_nan_or_inf", "pixels_in_range", "labels_in_set"} <= failed(result)
    assert "rows 3, 4" in result.check("no_nan_or_inf").summary
    assert "#12" in result.check("labels_in_set").summary
    assert "rows 5" in result.check("labels_in_set").summary
    pr = result.check("pixels_in_range").summary
    assert "above 1 (rows 7)" in pr and "below 0 (rows 8)" in pr
    # The stray label is not double-reported as an unbalanced class.
    assert result.check("class_balance_within_bounds").passed


def test_wrong_shape(batch, digits):
    wide = Dataset(np.repeat(batch.images, 2, axis=2), batch.labels, batch.classes, "16x8")
    result = validate_dataset(wide, reference=digits)
    assert "image_shape_matches" in failed(result)
    assert "1x16x8" in result.check("image_shape_matches").summary


def test_too_few_rows_missing_class_and_imbalance(batch):
    tiny = batch.subset(np.arange(10), "tiny")  # ten images, all of class 0
    result = validate_dataset(tiny, reference=batch)
    assert {"has_min_rows", "all_classes_present"} <= failed(result)
    idx = np.concatenate(
        [np.flatnonzero(batch.labels == 0)] * 4
        + [np.flatnonzero(batch.labels == k)[:3] for k in range(1, 10)]
    )
    skewed = batch.subset(idx, "skewed")
    result = validate_dataset(skewed, config=ValidationConfig(max_duplicate_rate=0.9))
    assert failed(result) == {"class_balance_within_bounds"}
    assert "'0'" in result.check("class_balance_within_bounds").summary


def test_duplicates(batch):
    doubled = batch.subset(np.concatenate([np.arange(len(batch))] * 2), "doubled")
    result = validate_dataset(doubled)
    assert failed(result) == {"duplicate_rate_below_max"}
    assert "0.500" in result.check("duplicate_rate_below_max").summary


def test_intensity_shift_against_reference(batch, digits):
    inverted = Dataset(1.0 - batch.images, batch.labels, batch.classes, "inverted")
    result = validate_dataset(inverted, reference=ReferenceStats.from_dataset(digits))
    # Inversion is a validity fault (blocking); the reference comparison only warns.
    assert failed(result) == {"background_is_dark"}
    assert [c.name for c in result.warned_checks] == ["class_intensity_matches_reference"]
    # A small honest difference (another real sample of the same digits) passes.
    other = digits.subset(np.arange(len(digits) - 300, len(digits)), "tail")
    assert validate_dataset(other, reference=batch).success


def test_empty_dataset_fails_cleanly(batch):
    empty = Dataset(batch.images[:0], batch.labels[:0], batch.classes, "empty")
    result = validate_dataset(empty, reference=batch)
    assert {"has_min_rows", "all_classes_present"} <= failed(result)


def test_result_is_json_and_round_trips(batch):
    images = batch.images.copy()
    images[0, 0, 0, 0] = np.nan
    result = validate_dataset(Dataset(images, batch.labels, batch.classes, "x"), reference=batch)
    d = json.loads(json.dumps(result.to_dict()))
    assert d["success"] is False and d["failed"] == ["no_nan_or_inf"]
    again = ValidationResult.from_dict(d)
    assert again.success is False and again.summary() == result.summary()


def test_reference_stats_round_trip(digits):
    ref = ReferenceStats.from_dataset(digits)
    assert ReferenceStats.from_dict(json.loads(json.dumps(ref.to_dict()))) == ref


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="min_rows"):
        ValidationConfig(min_rows=0)
    with pytest.raises(ValueError, match="max_duplicate_rate"):
        ValidationConfig(max_duplicate_rate=1.0)
