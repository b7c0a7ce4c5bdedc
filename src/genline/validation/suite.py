"""The Great Expectations suite: expectations per check, run on the summary tables."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from genline.validation.config import ReferenceStats, ValidationConfig
from genline.validation.describe import describe_failure
from genline.validation.results import (
    ADVISORY_CHECKS,
    CHECK_NAMES,
    SUITE_NAME,
    CheckOutcome,
    ValidationResult,
)
from genline.validation.tables import IMAGE_COLUMNS, class_frame, summary_frame

if TYPE_CHECKING:
    import pandas as pd

    from genline.data import Dataset

_CTX: list[Any] = []
_CTX_LOCK = threading.Lock()


def _context() -> Any:
    """One ephemeral GX context per process (analytics and progress bars off) with two batch
    definitions: the image table and the class table."""
    with _CTX_LOCK:
        if not _CTX:
            import great_expectations as gx
            from great_expectations.data_context.types.base import (
                DataContextConfig,
                InMemoryStoreBackendDefaults,
                ProgressBarsConfig,
            )

            cfg = DataContextConfig(
                store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
                analytics_enabled=False,
                progress_bars=ProgressBarsConfig(globally=False),
            )
            ctx = gx.get_context(mode="ephemeral", project_config=cfg)
            source = ctx.data_sources.add_pandas("genline")
            _CTX[:] = [ctx] + [
                source.add_dataframe_asset(name=t).add_batch_definition_whole_dataframe(t)
                for t in ("images", "classes")
            ]
        return _CTX


def _expectations(
    classes: Sequence[str], shape: str, cfg: ValidationConfig, with_reference: bool
) -> tuple[list, list]:
    """(image-table expectations, class-table expectations), each tagged with its check name.

    Aggregate expectations (min, max, distinct values, unique proportion) rather than per-row
    ones: the verdict is the same and GX's cost stays flat in the row count. The rows behind a
    failure are looked up afterwards for the message.
    """
    import great_expectations.expectations as gxe

    k = max(len(classes), 1)
    images = [
        ("has_min_rows", gxe.ExpectTableRowCountToBeBetween(min_value=cfg.min_rows)),
        (
            "image_shape_matches",
            gxe.ExpectColumnDistinctValuesToBeInSet(column="shape", value_set=[shape]),
        ),
        ("no_nan_or_inf", gxe.ExpectColumnMaxToBeBetween(column="nonfinite", max_value=0)),
        ("pixels_in_range", gxe.ExpectColumnMinToBeBetween(column="pixel_min", min_value=0.0)),
        ("pixels_in_range", gxe.ExpectColumnMaxToBeBetween(column="pixel_max", max_value=1.0)),
        (
            "background_is_dark",
            gxe.ExpectColumnMeanToBeBetween(
                column="bright_background", max_value=cfg.max_bright_background_rate
            ),
        ),
        (
            "labels_in_set",
            gxe.ExpectColumnDistinctValuesToBeInSet(column="label", value_set=list(classes)),
        ),
        (
            "duplicate_rate_below_max",
            gxe.ExpectColumnProportionOfUniqueValuesToBeBetween(
                column="row_key", min_value=1.0 - cfg.max_duplicate_rate
            ),
        ),
    ]
    per_class = [
        ("all_classes_present", gxe.ExpectColumnValuesToBeBetween(column="n", min_value=1)),
        (
            "class_balance_within_bounds",
            gxe.ExpectColumnValuesToBeBetween(
                column="share",
                min_value=cfg.class_share_min_factor / k,
                max_value=cfg.class_share_max_factor / k,
            ),
        ),
    ]
    if with_reference:
        per_class += [
            (
                "class_intensity_matches_reference",
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A="mean_intensity",
                    column_B="intensity_low",
                    or_equal=True,
                    ignore_row_if="either_value_is_missing",
                ),
            ),
            (
                "class_intensity_matches_reference",
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A="intensity_high",
                    column_B="mean_intensity",
                    or_equal=True,
                    ignore_row_if="either_value_is_missing",
                ),
            ),
        ]
    for name, e in images + per_class:
        e.meta = {"check": name}
    return [e for _, e in images], [e for _, e in per_class]


def _duplicate_rate(results: list[dict[str, Any]]) -> float:
    """1 - the unique proportion GX observed (0.0 for an empty table)."""
    observed = (results[0].get("result") or {}).get("observed_value") if results else None
    return float(1.0 - observed) if observed is not None else 0.0


def validate_dataset(
    dataset: Dataset,
    reference: Dataset | ReferenceStats | None = None,
    config: ValidationConfig | None = None,
) -> ValidationResult:
    """Run the suite on a dataset (its arrays may be invalid: that is what it finds out).

    Args:
        dataset: the batch or dataset; `images` (N, C, H, W), `labels` (N,), `classes`.
        reference: the accepted data it must resemble (a Dataset or its ReferenceStats). It sets
            the expected classes and shape (unless the config does) and the intensity bounds.
        config: the bounds; defaults to `ValidationConfig()`.

    Returns:
        A ValidationResult; `.success` is False when any check failed. Never raises for bad data.
    """
    cfg = config or ValidationConfig()
    t0 = time.perf_counter()
    if reference is not None and not isinstance(reference, ReferenceStats):
        reference = ReferenceStats.from_dataset(reference)
    images = np.asarray(dataset.images)
    if images.ndim != 4:
        return ValidationResult.unreadable(
            dataset.source, f"images must be (N, C, H, W), got shape {images.shape}"
        )
    classes = tuple(cfg.classes or (reference.classes if reference else dataset.classes))
    shape = "x".join(
        str(s)
        for s in (cfg.image_shape or (reference.image_shape if reference else images.shape[1:]))
    )
    frame = summary_frame(dataset, classes)
    return validate_frame(frame, classes, shape, reference, cfg, dataset.source, t0)


def validate_frame(
    frame: pd.DataFrame,
    classes: Sequence[str],
    shape: str,
    reference: ReferenceStats | None,
    cfg: ValidationConfig,
    source: str = "",
    t0: float | None = None,
) -> ValidationResult:
    """The suite on an image table made by `summary_frame` (`validate_dataset` = both steps).

    Args:
        frame: the image table.
        classes: expected class names.
        shape: expected "CxHxW".
        reference: accepted reference statistics, or None (intensity check skipped).
        cfg: the bounds.
        source: names the data in messages.
        t0: perf_counter() at the start, for the recorded duration.
    """
    t0 = time.perf_counter() if t0 is None else t0
    classes = tuple(classes)
    classes_df = class_frame(frame, classes, reference, cfg)
    with_reference = reference is not None and bool(classes_df["intensity_low"].notna().any())
    image_exps, class_exps = _expectations(classes, shape, cfg, with_reference)

    import great_expectations as gx

    _, images_def, classes_def = _context()
    grouped: dict[str, list[dict[str, Any]]] = {}
    statistics: dict[str, Any] = {}
    for table, batch_def, exps in (
        ("images", images_def, image_exps),
        ("classes", classes_def, class_exps),
    ):
        suite = gx.ExpectationSuite(name=f"{SUITE_NAME}.{table}", expectations=exps)
        # Only the columns the expectations read: GX fingerprints every batch by hashing it.
        df = frame[list(IMAGE_COLUMNS)] if table == "images" else classes_df
        res = batch_def.get_batch(batch_parameters={"dataframe": df}).validate(
            suite, result_format="BASIC"
        )
        statistics[table] = res.statistics
        for r in res.results:  # each expectation carries its check name in meta
            d = r.to_json_dict()
            grouped.setdefault(d["expectation_config"]["meta"]["check"], []).append(d)

    skip_reason = (
        "no reference (none accepted yet): intensity not compared"
        if reference is None
        else "the reference shares no class with this batch"
    )
    outcomes = [CheckOutcome("readable", True, "ok")]
    for name in CHECK_NAMES[1:]:
        results = grouped.get(name, [])
        if not results:
            outcomes.append(CheckOutcome(name, True, skip_reason, skipped=True))
            continue
        passed = all(r["success"] for r in results)
        text = "ok" if passed else describe_failure(name, frame, classes_df, shape, cfg, results)
        outcomes.append(
            CheckOutcome(name, passed, text, expectations=tuple(_compact(r) for r in results))
        )
    stats = {
        "num_rows": int(len(frame)),
        "image_shape": [int(x) for x in str(frame["shape"].cat.categories[0]).split("x")]
        if len(frame)
        else [int(x) for x in shape.split("x")],
        "classes": list(classes),
        "class_counts": {
            str(k): int(v)
            for k, v in zip(
                frame["label"].cat.categories,
                np.bincount(
                    frame["label"].cat.codes.to_numpy(),
                    minlength=len(frame["label"].cat.categories),
                ),
                strict=True,
            )
            if v
        },
        "duplicate_rate": _duplicate_rate(grouped.get("duplicate_rate_below_max", [])),
        "reference_fingerprint": reference.fingerprint if reference else None,
        "class_table": json.loads(classes_df.to_json(orient="records")),
        "gx_statistics": statistics,
    }
    return ValidationResult(
        all(o.passed for o in outcomes if o.name not in ADVISORY_CHECKS),
        tuple(outcomes),
        stats,
        source,
        SUITE_NAME,
        f"great_expectations {gx.__version__}",
        round(time.perf_counter() - t0, 4),
    )


def _compact(res: dict[str, Any]) -> dict[str, Any]:
    cfg = res["expectation_config"]
    kwargs = {k: v for k, v in cfg["kwargs"].items() if k not in ("batch_id",)}
    r = res.get("result") or {}
    keep = {
        k: r[k]
        for k in (
            "observed_value",
            "unexpected_count",
            "unexpected_percent",
            "partial_unexpected_list",
            "element_count",
        )
        if k in r
    }
    return {"type": cfg["type"], "kwargs": kwargs, "success": res["success"], "result": keep}
