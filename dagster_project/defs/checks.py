"""Asset checks: the validation suite's predicates on each daily batch, and restorability of the
versioned training dataset. Validity checks are blocking: a failure stops downstream assets in the
same run (and the batch is quarantined). Checks that compare a batch with the accepted data (the
reference intensity, the Evidently input-drift check) are non-blocking with WARN severity: a valid
batch of a new style is accepted and flagged, never quarantined.
"""

import warnings

import dagster as dg

from genline.validation import ADVISORY_CHECKS, CHECK_NAMES
from genline.versioning import VersioningError, md5_file, verify_in_remote

from .partitions import daily_partitions
from .resources import DvcRemoteResource, GenlineStateResource

INPUT_DRIFT_CHECK = "batch_matches_training_data"

CHECK_DESCRIPTIONS = {
    "readable": "The delivery could be read (no zero-byte, corrupt or non-image file).",
    "has_min_rows": "At least min_rows images.",
    "image_shape_matches": "Every image has the expected (C, H, W).",
    "no_nan_or_inf": "No image contains NaN or Inf.",
    "pixels_in_range": "Every pixel is in [0, 1].",
    "background_is_dark": "Bright ink on a dark background: at most 5% of images have bright "
    "corners (an inverted delivery fails).",
    "labels_in_set": "Every label is one of the accepted classes.",
    "all_classes_present": "Every accepted class has images in the batch.",
    "class_balance_within_bounds": "Each class's share is within the configured bounds.",
    "duplicate_rate_below_max": "Few repeated images.",
    "class_intensity_matches_reference": "Per-class mean intensity is close to the accepted "
    "reference's (skipped before the first version). Advisory: a new style warns, never blocks.",
}

# Emitted by the incoming_batch asset itself from one run of the Great Expectations suite.
# Partitioned checks (preview in Dagster 1.13) keep each day's verdict on that day's partition.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", category=dg.PreviewWarning)
    incoming_batch_check_specs = [
        dg.AssetCheckSpec(
            name,
            asset="incoming_batch",
            blocking=name not in ADVISORY_CHECKS,
            partitions_def=daily_partitions,
            description=CHECK_DESCRIPTIONS[name],
        )
        for name in CHECK_NAMES
    ] + [
        dg.AssetCheckSpec(
            INPUT_DRIFT_CHECK,
            asset="incoming_batch",
            blocking=False,
            partitions_def=daily_partitions,
            description="Evidently: the accepted batch's image features match the current "
            "training data (KS + normalised Wasserstein, genline.drift.input_batch). Non-blocking "
            "WARN: a valid batch of a new style is accepted and flagged.",
        )
    ]


@dg.asset_check(asset="training_dataset", blocking=True)
def training_dataset_restorable(
    training_dataset: dict, dvc_remote: DvcRemoteResource, genline_state: GenlineStateResource
) -> dg.AssetCheckResult:
    """The recorded version is in the DVC remote and the published file has its md5."""
    cfg = dvc_remote.config(genline_state.root())
    md5 = training_dataset["dvc_md5"]
    try:
        in_remote = verify_in_remote(cfg, md5)
    except VersioningError as exc:
        return dg.AssetCheckResult(passed=False, description=str(exc))
    file_md5 = md5_file(training_dataset["path"])
    passed = in_remote and file_md5 == md5
    return dg.AssetCheckResult(
        passed=passed,
        description=(
            "version is in the remote and the published file matches"
            if passed
            else f"in remote: {in_remote}; published file md5 {file_md5} vs {md5}"
        ),
        metadata={"dvc_md5": md5, "remote": cfg.remote_url, "in_remote": in_remote},
    )
