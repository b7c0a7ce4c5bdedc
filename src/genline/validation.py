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
            raise ValueError("need 0 <= class_share_min_factor <= 1 <= class_share_max_factor, got "
                             f"{self.class_share_min_factor}, {self.class_share_max_factor}")
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
        return cls(tuple(ds.classes), tuple(int(s) for s in ds.images.shape[1:]), cm, cs,
                   len(ds), ds.fingerprint)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReferenceStats:
        return cls(tuple(d["classes"]), tuple(d["image_shape"]), dict(d["class_mean"]),
                   dict(d["class_std"]), int(d["num_rows"]), d.get("fingerprint", ""))


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
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                               time.gmtime()))

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
            f"{c.name}: {c.summary}" for c in self.failed_checks)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["failed"] = [c.name for c in self.failed_checks]
        return json.loads(json.dumps(d, default=_json_default))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ValidationResult:
        checks = tuple(CheckOutcome(c["name"], c["passed"], c["summary"], c.get("skipped", False),
                                    tuple(c.get("expectations", ()))) for c in d["checks"])
        return cls(d["success"], checks, d.get("stats", {}), d.get("source", ""),
                   d.get("suite", SUITE_NAME), d.get("engine", ""), d.get("seconds", 0.0),
                   d.get("created", ""))

    @classmethod
    def unreadable(cls, source: str, error: str) -> ValidationResult:
        """The result for a delivery that could not even be read (corrupt file, empty folder)."""
        return cls(False, (CheckOutcome("readable", False, error),), {"num_rows": 0}, source,
                   engine="genline.ingest")


# --- the per-row summary frame --------------------------------------------------------------------

_HASH_COEF: list[np.ndarray] = []


def _mean_intensity(images: np.ndarray) -> np.ndarray:
    flat = images.reshape(len(images), -1)
    with np.errstate(invalid="ignore"):
        return np.nanmean(np.where(np.isfinite(flat), flat, np.nan), axis=1) if len(flat) else \
            np.zeros(0)


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
    """One row per image: what the suite checks. `classes` are the expected class names.

    A label outside 0..len(ds.classes)-1 becomes "#<label>" so the label check names it.
    """
    import pandas as pd

    images = np.asarray(ds.images)
    n = len(images)
    flat = images.reshape(n, -1).astype(np.float32, copy=False) if n else np.zeros((0, 1))
    finite = np.isfinite(flat)
    nonfinite = (~finite).sum(axis=1)
    with np.errstate(invalid="ignore"):
        masked = np.where(finite, flat, np.nan)
        pmin = np.nanmin(masked, axis=1) if n and flat.shape[1] else np.zeros(n)
        pmax = np.nanmax(masked, axis=1) if n and flat.shape[1] else np.zeros(n)
        mean = np.nanmean(masked, axis=1) if n and flat.shape[1] else np.zeros(n)
    labels = np.asarray(ds.labels).astype(np.int64, copy=False)
    names = np.array(list(ds.classes) + ["?"], dtype=object)
    in_range = (labels >= 0) & (labels < len(ds.classes))
    label_names = np.where(in_range, names[np.clip(labels, 0, len(ds.classes))],
                           np.char.add("#", labels.astype(str)).astype(object))
    shape = "x".join(str(s) for s in images.shape[1:])
    frame = pd.DataFrame({
        "row": np.arange(n),
        "label": pd.Categorical(label_names),
        "shape": pd.Categorical([shape] * n) if n else pd.Categorical([]),
        "pixel_min": pmin,
        "pixel_max": pmax,
        "nonfinite": nonfinite,
        "mean_intensity": mean,
        "row_key": _row_keys(flat) if n else np.zeros(0, np.uint64),
    })
    # Share of the row's class among rows with an expected label (others are NaN: GX skips them,
    # and labels_in_set reports them).
    expected = frame["label"].isin(list(classes)).to_numpy()
    counts = frame["label"][expected].value_counts()
    share = frame["label"].map(counts / max(int(expected.sum()), 1)).astype(float)
    frame["class_share"] = share.where(expected)
    return frame


# --- the suite ------------------------------------------------------------------------------------

_CTX: list[Any] = []
_CTX_LOCK = threading.Lock()


def _context() -> Any:
    """One ephemeral GX context per process, analytics and progress bars off."""
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
            asset = ctx.data_sources.add_pandas("genline").add_dataframe_asset(name="images")
            _CTX[:] = [ctx, asset.add_batch_definition_whole_dataframe("summary_frame")]
        return _CTX


@dataclass(frozen=True)
class _Plan:
    shape: tuple[int, int, int]
    classes: tuple[str, ...]
    share_bounds: tuple[float, float]
    intensity: dict[str, tuple[float, float]]  # class -> (low, high); empty = skipped
    intensity_skip_reason: str


def _plan(ds: Dataset, reference: ReferenceStats | None, cfg: ValidationConfig,
          frame: pd.DataFrame) -> _Plan:
    classes = cfg.classes or (reference.classes if reference else tuple(ds.classes))
    shape = cfg.image_shape or (reference.image_shape if reference else
                                tuple(int(s) for s in np.asarray(ds.images).shape[1:]))
    k = max(len(classes), 1)
    bounds = (cfg.class_share_min_factor / k, cfg.class_share_max_factor / k)
    intensity: dict[str, tuple[float, float]] = {}
    reason = ""
    if reference is None:
        reason = "no reference (none accepted yet): intensity not compared"
    else:
        n_by_class = frame["label"].value_counts()
        for name in classes:
            n_c = int(n_by_class.get(name, 0))
            if name not in reference.class_mean or n_c == 0:
                continue  # absent classes fail all_classes_present instead
            tol = max(cfg.intensity_abs_tol,
                      cfg.intensity_z * reference.class_std[name] / math.sqrt(n_c))
            m = reference.class_mean[name]
            intensity[name] = (m - tol, m + tol)
        if not intensity:
            reason = "reference shares no class with this batch"
    return _Plan(tuple(shape), tuple(classes), bounds, intensity, reason)


def _expectations(plan: _Plan, cfg: ValidationConfig) -> list[tuple[str, Any]]:
    """(check name, GX expectation) pairs."""
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    shape = "x".join(str(s) for s in plan.shape)
    out: list[tuple[str, Any]] = [
        ("has_min_rows", gxe.ExpectTableRowCountToBeBetween(min_value=cfg.min_rows)),
        ("image_shape_matches", gxe.ExpectColumnValuesToBeInSet(column="shape",
                                                                value_set=[shape])),
        ("no_nan_or_inf", gxe.ExpectColumnValuesToBeBetween(column="nonfinite", min_value=0,
                                                            max_value=0)),
        ("pixels_in_range", gxe.ExpectColumnValuesToBeBetween(column="pixel_min",
                                                              min_value=0.0)),
        ("pixels_in_range", gxe.ExpectColumnValuesToBeBetween(column="pixel_max",
                                                              max_value=1.0)),
        ("labels_in_set", gxe.ExpectColumnValuesToBeInSet(column="label",
                                                          value_set=list(plan.classes))),
        ("all_classes_present", gxe.ExpectColumnDistinctValuesToContainSet(
            column="label", value_set=list(plan.classes))),
        ("class_balance_within_bounds", gxe.ExpectColumnValuesToBeBetween(
            column="class_share", min_value=plan.share_bounds[0],
            max_value=plan.share_bounds[1])),
        ("duplicate_rate_below_max", gxe.ExpectColumnProportionOfUniqueValuesToBeBetween(
            column="row_key", min_value=1.0 - cfg.max_duplicate_rate)),
    ]
    for name, (lo, hi) in plan.intensity.items():
        out.append(("class_intensity_matches_reference", gxe.ExpectColumnMeanToBeBetween(
            column="mean_intensity", min_value=lo, max_value=hi,
            row_condition=Column("label") == name, meta={"class": name})))
    return out


def _describe(check: str, res: dict[str, Any], frame: pd.DataFrame) -> str:
    """One line a person can act on, from a failed GX expectation result."""
    kw = res["expectation_config"]["kwargs"]
    r = res.get("result") or {}
    if res.get("exception_info", {}).get("raised_exception"):
        return f"could not be evaluated ({res['exception_info'].get('exception_message')})"
    rows = r.get("partial_unexpected_index_list") or []
    rows = [int(x["row"]) if isinstance(x, dict) else int(x) for x in rows][:5]
    at = f" (rows {', '.join(map(str, rows))}{'...' if r.get('unexpected_count', 0) > 5 else ''})"
    count = r.get("unexpected_count")
    if check == "has_min_rows":
        return f"{r.get('observed_value')} rows, fewer than the {kw.get('min_value')} required"
    if check == "image_shape_matches":
        got = sorted(set(map(str, r.get("partial_unexpected_list") or [])))
        return f"images are {', '.join(got)}, expected {kw['value_set'][0]} (C x H x W)"
    if check == "no_nan_or_inf":
        return f"{count} images contain NaN or Inf{at}"
    if check == "pixels_in_range":
        side = "below 0" if kw["column"] == "pixel_min" else "above 1"
        return f"{count} images have pixels {side}{at}"
    if check == "labels_in_set":
        bad = sorted(set(map(str, r.get("partial_unexpected_list") or [])))
        return f"{count} labels outside the set {kw['value_set']}: {bad}{at}"
    if check == "all_classes_present":
        missing = sorted(set(kw["value_set"]) - set(map(str, r.get("observed_value") or [])))
        return f"classes missing from the batch: {missing}"
    if check == "class_balance_within_bounds":
        shares = frame.groupby("label", observed=True)["class_share"].first()
        bad = {str(k): round(float(v), 3) for k, v in shares.items()
               if not kw["min_value"] <= v <= kw["max_value"]}
        return (f"class shares outside [{kw['min_value']:.3f}, {kw['max_value']:.3f}]: {bad}")
    if check == "duplicate_rate_below_max":
        if r.get("observed_value") is None:
            return "no rows to compare"
        rate = 1.0 - float(r["observed_value"])
        return f"duplicate rate {rate:.3f} above the maximum {1 - kw['min_value']:.3f}"
    if check == "class_intensity_matches_reference":
        cls = res["expectation_config"].get("meta", {}).get("class", "?")
        if r.get("observed_value") is None:
            return f"class {cls!r} mean intensity cannot be computed (no finite pixels)"
        return (f"class {cls!r} mean intensity {r.get('observed_value'):.3f} outside "
                f"[{kw['min_value']:.3f}, {kw['max_value']:.3f}] set by the reference")
    return json.dumps(r, default=_json_default)[:200]


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
            dataset.source, f"images must be (N, C, H, W), got shape {images.shape}")
    probe_classes = cfg.classes or (reference.classes if reference else tuple(dataset.classes))
    frame = summary_frame(dataset, probe_classes)
    plan = _plan(dataset, reference, cfg, frame)
    pairs = _expectations(plan, cfg)

    import great_expectations as gx

    ctx, batch_def = _context()
    for name, e in pairs:
        e.meta = {**(e.meta or {}), "check": name}
    suite = gx.ExpectationSuite(name=SUITE_NAME, expectations=[e for _, e in pairs])
    batch = batch_def.get_batch(batch_parameters={"dataframe": frame})
    gx_result = batch.validate(suite, result_format={
        "result_format": "SUMMARY", "unexpected_index_column_names": ["row"],
        "partial_unexpected_count": 20})
    grouped: dict[str, list[dict[str, Any]]] = {}
    for res in gx_result.results:  # each expectation carries its check name in meta
        d = res.to_json_dict()
        grouped.setdefault(d["expectation_config"]["meta"]["check"], []).append(d)

    outcomes = [CheckOutcome("readable", True, "ok")]
    for name in CHECK_NAMES[1:]:
        results = grouped.get(name, [])
        if not results:
            outcomes.append(CheckOutcome(name, True, plan.intensity_skip_reason or "not run",
                                         skipped=True))
            continue
        failed = [r for r in results if not r["success"]]
        text = "; ".join(_describe(name, r, frame) for r in failed) if failed else "ok"
        outcomes.append(CheckOutcome(name, not failed, text,
                                     expectations=tuple(_compact(r) for r in results)))
    stats = {
        "num_rows": int(len(frame)),
        "image_shape": list(images.shape[1:]),
        "classes": list(plan.classes),
        "class_counts": {str(k): int(v) for k, v in
                         frame["label"].value_counts().sort_index().items() if v},
        "duplicate_rate": float(1 - frame["row_key"].nunique() / len(frame)) if len(frame)
        else 0.0,
        "reference_fingerprint": reference.fingerprint if reference else None,
        "gx_statistics": gx_result.statistics,
    }
    return ValidationResult(all(o.passed for o in outcomes), tuple(outcomes), stats,
                            dataset.source, SUITE_NAME, f"great_expectations {gx.__version__}",
                            round(time.perf_counter() - t0, 4))


def _compact(res: dict[str, Any]) -> dict[str, Any]:
    cfg = res["expectation_config"]
    kwargs = {k: v for k, v in cfg["kwargs"].items() if k not in ("batch_id",)}
    r = res.get("result") or {}
    keep = {k: r[k] for k in ("observed_value", "unexpected_count", "unexpected_percent",
                              "partial_unexpected_list", "element_count") if k in r}
    return {"type": cfg["type"], "kwargs": kwargs, "success": res["success"], "result": keep}


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    return str(o)
