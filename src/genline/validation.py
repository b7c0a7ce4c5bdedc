"""The data-quality suite: Great Expectations 1.x expectations defined in code.

Every batch that may reach training passes `validate_dataset` first: in the Dagster asset checks,
in the Kubeflow pipeline's validation step and from the CLI. The suite runs on a per-row summary
frame (one row per image: label, shape, pixel min/max, non-finite count, mean intensity, a content
key for duplicates), so its cost does not grow with the image size.

Checks (each a predicate name, backed by one or more GX expectations):
    has_min_rows, image_shape_matches, no_nan_or_inf, pixels_in_range, labels_in_set,
    all_classes_present, class_balance_within_bounds, duplicate_rate_below_max,
    class_intensity_matches_reference (only with a reference).

The result is a plain, JSON-able `ValidationResult`; nothing here knows about Dagster or kfp.
"""

from __future__ import annotations

import json
import math
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from genline.data import Dataset

SUITE_NAME = "genline_dataset"
CHECK_NAMES = (
    "readable",
    "has_min_rows",
    "image_shape_matches",
    "no_nan_or_inf",
    "pixels_in_range",
    "labels_in_set",
    "all_classes_present",
    "class_balance_within_bounds",
    "duplicate_rate_below_max",
    "class_intensity_matches_reference",
)


@dataclass(frozen=True)
class ValidationConfig:
    """Bounds of the suite.

    Attributes:
        min_rows: fewest images a batch may have.
        image_shape: expected (C, H, W); None takes the reference's, else the batch's own.
        classes: expected class names; None takes the reference's, else the batch's own.
        class_share_min_factor: every class's share must be >= factor / num_classes.
        class_share_max_factor: every class's share must be <= factor / num_classes.
        max_duplicate_rate: largest share of rows that repeat another row's image.
        intensity_z: a class's mean intensity may differ from the reference's by at most
            max(intensity_abs_tol, intensity_z * reference_std / sqrt(n_class)).
        intensity_abs_tol: the floor of that bound (pixel units, [0, 1] scale).
    """

    min_rows: int = 20
    image_shape: tuple[int, int, int] | None = None
    classes: tuple[str, ...] | None = None
    class_share_min_factor: float = 0.4
    class_share_max_factor: float = 2.5
    max_duplicate_rate: float = 0.05
    intensity_z: float = 6.0
    intensity_abs_tol: float = 0.02

    def __post_init__(self) -> None:
        if self.min_rows < 1:
            raise ValueError(f"min_rows must be >= 1, got {self.min_rows}")
        if not 0 <= self.class_share_min_factor <= 1 <= self.class_share_max_factor:
            raise ValueError(
                "need 0 <= class_share_min_factor <= 1 <= class_share_max_factor, got "
                f"{self.class_share_min_factor}, {self.class_share_max_factor}"
            )
        if not 0 <= self.max_duplicate_rate < 1:
            raise ValueError(f"max_duplicate_rate must be in [0, 1), got {self.max_duplicate_rate}")
        if self.intensity_z <= 0 or self.intensity_abs_tol < 0:
            raise ValueError("intensity_z must be > 0 and intensity_abs_tol >= 0")


@dataclass(frozen=True)
class ReferenceStats:
    """What a batch is compared with: the accepted data's classes, shape and per-class intensity."""

    classes: tuple[str, ...]
    image_shape: tuple[int, int, int]
    class_mean: dict[str, float]
    class_std: dict[str, float]
    num_rows: int
    fingerprint: str = ""

    @classmethod
    def from_dataset(cls, ds: Dataset) -> ReferenceStats:
        means = _mean_intensity(ds.images)
        cm, cs = {}, {}
        for k, name in enumerate(ds.classes):
            m = means[ds.labels == k]
            if len(m):
                cm[name], cs[name] = float(m.mean()), float(m.std())
        return cls(
            tuple(ds.classes),
            tuple(int(s) for s in ds.images.shape[1:]),
            cm,
            cs,
            len(ds),
            ds.fingerprint,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReferenceStats:
        return cls(
            tuple(d["classes"]),
            tuple(d["image_shape"]),
            dict(d["class_mean"]),
            dict(d["class_std"]),
            int(d["num_rows"]),
            d.get("fingerprint", ""),
        )


@dataclass(frozen=True)
class CheckOutcome:
    """One named check: passed, skipped (with the reason) or failed (with what GX observed)."""

    name: str
    passed: bool
    summary: str
    skipped: bool = False
    expectations: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class ValidationResult:
    """The verdict on one dataset. `to_dict()` is JSON-able and round-trips via `from_dict`."""

    success: bool
    checks: tuple[CheckOutcome, ...]
    stats: dict[str, Any]
    source: str = ""
    suite: str = SUITE_NAME
    engine: str = ""
    seconds: float = 0.0
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    @property
    def failed_checks(self) -> list[CheckOutcome]:
        return [c for c in self.checks if not c.passed]

    def check(self, name: str) -> CheckOutcome:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check named {name!r} in this result ({[c.name for c in self.checks]})")

    def summary(self) -> str:
        if self.success:
            return f"{self.source or 'dataset'}: all {len(self.checks)} checks passed"
        return f"{self.source or 'dataset'}: " + "; ".join(
            f"{c.name}: {c.summary}" for c in self.failed_checks
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["failed"] = [c.name for c in self.failed_checks]
        return json.loads(json.dumps(d, default=_json_default))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ValidationResult:
        checks = tuple(
            CheckOutcome(
                c["name"],
                c["passed"],
                c["summary"],
                c.get("skipped", False),
                tuple(c.get("expectations", ())),
            )
            for c in d["checks"]
        )
        return cls(
            d["success"],
            checks,
            d.get("stats", {}),
            d.get("source", ""),
            d.get("suite", SUITE_NAME),
            d.get("engine", ""),
            d.get("seconds", 0.0),
            d.get("created", ""),
        )

    @classmethod
    def unreadable(cls, source: str, error: str) -> ValidationResult:
        """The result for a delivery that could not even be read (corrupt file, empty folder)."""
        return cls(
            False,
            (CheckOutcome("readable", False, error),),
            {"num_rows": 0},
            source,
            engine="genline.ingest",
        )


# --- the summary tables ---------------------------------------------------------------------------

_HASH_COEF: list[np.ndarray] = []
IMAGE_COLUMNS = ("label", "shape", "pixel_min", "pixel_max", "nonfinite", "row_key")


def _row_stats(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(non-finite count, min, max, mean) per row, ignoring non-finite values; fast when all
    values are finite (the common case), exact either way."""
    n = len(flat)
    if n == 0 or flat.shape[1] == 0:
        z = np.zeros(n)
        return z.astype(np.int64), z, z, z
    finite = np.isfinite(flat)
    nonfinite = flat.shape[1] - finite.sum(axis=1)
    pmin, pmax, mean = flat.min(axis=1), flat.max(axis=1), flat.mean(axis=1, dtype=np.float64)
    bad = np.flatnonzero(nonfinite)
    if len(bad):
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: NaN is the answer
            sub = np.where(finite[bad], flat[bad], np.nan)
            pmin[bad], pmax[bad], mean[bad] = (
                np.nanmin(sub, axis=1),
                np.nanmax(sub, axis=1),
                np.nanmean(sub, axis=1),
            )
    return nonfinite, pmin, pmax, mean


def _mean_intensity(images: np.ndarray) -> np.ndarray:
    return _row_stats(images.reshape(len(images), -1))[3]


def _row_keys(flat: np.ndarray) -> np.ndarray:
    """A 64-bit content key per row (multiply-xorshift over the float32 bit patterns)."""
    if not _HASH_COEF or _HASH_COEF[0].shape[0] != flat.shape[1]:
        rng = np.random.default_rng(20261128)
        _HASH_COEF[:] = [rng.integers(1, 2**63, size=flat.shape[1], dtype=np.uint64) | 1]
    bits = np.ascontiguousarray(flat, dtype="<f4").view("<u4").astype(np.uint64)
    with np.errstate(over="ignore"):
        h = (bits * _HASH_COEF[0]).sum(axis=1, dtype=np.uint64)
        h ^= h >> np.uint64(31)
        h *= np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(29)
    return h


def summary_frame(ds: Dataset, classes: Sequence[str]) -> pd.DataFrame:
    """The image table: one row per image with what the suite checks.

    `label` holds class names (categorical); a label outside 0..len(ds.classes)-1 becomes
    "#<label>" so the label check can name it. `classes` (the expected names) only sets the
    category order.
    """
    import pandas as pd

    images = np.asarray(ds.images)
    n = len(images)
    flat = (
        images.reshape(n, -1).astype(np.float32, copy=False) if n else np.zeros((0, 1), np.float32)
    )
    nonfinite, pmin, pmax, mean = _row_stats(flat)
    labels = np.asarray(ds.labels).astype(np.int64, copy=False)
    names = list(ds.classes)
    in_range = (labels >= 0) & (labels < len(names))
    strays = sorted(set(labels[~in_range].tolist()))
    categories = names + [f"#{x}" for x in strays]
    codes = labels.copy()
    for j, x in enumerate(strays):
        codes[labels == x] = len(names) + j
    shape = "x".join(str(s) for s in images.shape[1:])
    return pd.DataFrame(
        {
            "row": np.arange(n),
            "label": pd.Categorical.from_codes(codes, categories=categories),
            "shape": pd.Categorical.from_codes(np.zeros(n, np.int8), categories=[shape]),
            "pixel_min": pmin,
            "pixel_max": pmax,
            "nonfinite": nonfinite.astype(np.int32),
            "mean_intensity": mean,
            "row_key": _row_keys(flat) if n else np.zeros(0, np.uint64),
        }
    )


def class_frame(
    frame: pd.DataFrame,
    classes: Sequence[str],
    reference: ReferenceStats | None,
    cfg: ValidationConfig,
) -> pd.DataFrame:
    """The class table: one row per expected class with its count, share and mean intensity,
    and the intensity bounds the reference sets (NaN where there is no reference)."""
    import pandas as pd

    # Per-category counts and intensity sums from the categorical codes (one pass each).
    cats = list(frame["label"].cat.categories)
    codes = frame["label"].cat.codes.to_numpy()
    intensity = frame["mean_intensity"].to_numpy()
    finite = np.isfinite(intensity)
    n_all = np.bincount(codes, minlength=len(cats))
    n_finite = np.bincount(codes[finite], minlength=len(cats))
    sums = np.bincount(codes[finite], weights=intensity[finite], minlength=len(cats))
    counts = {c: int(n_all[i]) for i, c in enumerate(cats)}
    means = {c: sums[i] / n_finite[i] if n_finite[i] else np.nan for i, c in enumerate(cats)}
    total = max(sum(counts.get(c, 0) for c in classes), 1)
    rows = []
    for name in classes:
        n_c = int(counts.get(name, 0))
        lo = hi = np.nan
        if reference is not None and name in reference.class_mean and n_c:
            tol = max(
                cfg.intensity_abs_tol, cfg.intensity_z * reference.class_std[name] / math.sqrt(n_c)
            )
            lo, hi = reference.class_mean[name] - tol, reference.class_mean[name] + tol
        m = float(means.get(name, np.nan)) if n_c else np.nan
        rows.append(
            {
                "label": name,
                "n": n_c,
                "share": n_c / total,
                "mean_intensity": m,
                "intensity_low": lo,
                "intensity_high": hi,
            }
        )
    return pd.DataFrame(
        rows, columns=["label", "n", "share", "mean_intensity", "intensity_low", "intensity_high"]
    )


# --- the suite ------------------------------------------------------------------------------------

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


def _rows(mask: Any) -> str:
    idx = np.flatnonzero(np.asarray(mask))
    more = "..." if len(idx) > 5 else ""
    return f" (rows {', '.join(map(str, idx[:5].tolist()))}{more})" if len(idx) else ""


def _describe(
    check: str,
    frame: pd.DataFrame,
    classes_df: pd.DataFrame,
    shape: str,
    cfg: ValidationConfig,
    results: list[dict[str, Any]],
) -> str:
    """One line a person can act on, for a failed check (rows looked up in the tables)."""
    for r in results:
        if r.get("exception_info", {}).get("raised_exception"):
            return f"could not be evaluated ({r['exception_info'].get('exception_message')})"
    k = max(len(classes_df), 1)
    if check == "has_min_rows":
        return f"{len(frame)} rows, fewer than the {cfg.min_rows} required"
    if check == "image_shape_matches":
        got = sorted(map(str, frame["shape"].unique()))
        return f"images are {', '.join(got)}, expected {shape} (C x H x W)"
    if check == "no_nan_or_inf":
        bad = frame["nonfinite"].to_numpy() > 0
        return f"{int(bad.sum())} images contain NaN or Inf{_rows(bad)}"
    if check == "pixels_in_range":
        parts = []
        for side, bad in (
            ("below 0", frame["pixel_min"].to_numpy() < 0),
            ("above 1", frame["pixel_max"].to_numpy() > 1),
        ):
            if bad.any():
                parts.append(f"{int(bad.sum())} images have pixels {side}{_rows(bad)}")
        return "; ".join(parts)
    if check == "labels_in_set":
        bad = ~frame["label"].isin(list(classes_df["label"])).to_numpy()
        names = sorted(set(map(str, frame["label"][bad])))
        return (
            f"{int(bad.sum())} labels outside the set {list(classes_df['label'])}: "
            f"{names}{_rows(bad)}"
        )
    if check == "all_classes_present":
        return f"classes missing from the batch: {list(classes_df.loc[classes_df.n < 1, 'label'])}"
    if check == "class_balance_within_bounds":
        lo, hi = cfg.class_share_min_factor / k, cfg.class_share_max_factor / k
        bad = classes_df[(classes_df.share < lo) | (classes_df.share > hi)]
        return (
            f"class shares outside [{lo:.3f}, {hi:.3f}]: "
            f"{ {r.label: round(r.share, 3) for r in bad.itertuples()} }"
        )
    if check == "duplicate_rate_below_max":
        if not len(frame):
            return "no rows to compare"
        rate = 1.0 - frame["row_key"].nunique() / len(frame)
        return f"duplicate rate {rate:.3f} above the maximum {cfg.max_duplicate_rate:.3f}"
    if check == "class_intensity_matches_reference":
        out = []
        for r in classes_df.itertuples():
            if np.isnan(r.intensity_low):
                continue
            if np.isnan(r.mean_intensity):
                out.append(
                    f"class {r.label!r} mean intensity cannot be computed (no finite pixels)"
                )
            elif not r.intensity_low <= r.mean_intensity <= r.intensity_high:
                out.append(
                    f"class {r.label!r} mean intensity {r.mean_intensity:.3f} outside "
                    f"[{r.intensity_low:.3f}, {r.intensity_high:.3f}] set by the reference"
                )
        return "; ".join(out) or "outside the reference's bounds"
    return "failed"


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
        text = "ok" if passed else _describe(name, frame, classes_df, shape, cfg, results)
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
        all(o.passed for o in outcomes),
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


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    return str(o)
