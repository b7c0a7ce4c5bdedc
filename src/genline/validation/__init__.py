"""The data-quality suite: Great Expectations 1.x expectations defined in code.

Every batch that may reach training passes `validate_dataset` first: in the Dagster asset checks,
in the Kubeflow pipeline's validation step and from the CLI. The suite runs on a per-row summary
frame (one row per image: label, shape, pixel min/max, non-finite count, mean intensity, a content
key for duplicates), so its cost does not grow with the image size.

Checks (each a predicate name, backed by one or more GX expectations):
    has_min_rows, image_shape_matches, no_nan_or_inf, pixels_in_range, labels_in_set,
    background_is_dark, all_classes_present, class_balance_within_bounds,
    duplicate_rate_below_max, class_intensity_matches_reference (only with a reference).

`ADVISORY_CHECKS` (class_intensity_matches_reference) compare a batch with the accepted
reference: their failure is a change of style, reported in `warned_checks`, and does not make
the result fail. Every other check is about validity and does.

The result is a plain, JSON-able `ValidationResult`; nothing here knows about Dagster or kfp.
"""

from genline.validation.config import ReferenceStats, ValidationConfig
from genline.validation.results import (
    ADVISORY_CHECKS,
    CHECK_NAMES,
    SUITE_NAME,
    CheckOutcome,
    ValidationResult,
)
from genline.validation.suite import validate_dataset, validate_frame
from genline.validation.tables import IMAGE_COLUMNS, class_frame, summary_frame

__all__ = [
    "ADVISORY_CHECKS",
    "CHECK_NAMES",
    "IMAGE_COLUMNS",
    "SUITE_NAME",
    "CheckOutcome",
    "ReferenceStats",
    "ValidationConfig",
    "ValidationResult",
    "class_frame",
    "summary_frame",
    "validate_dataset",
    "validate_frame",
]
