"""Failed checks in words: one line a person can act on, with the rows or classes at fault."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from genline.validation.config import ValidationConfig


def _rows(mask: Any) -> str:
    idx = np.flatnonzero(np.asarray(mask))
    more = "..." if len(idx) > 5 else ""
    return f" (rows {', '.join(map(str, idx[:5].tolist()))}{more})" if len(idx) else ""


def describe_failure(
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
    if check == "background_is_dark":
        bad = frame["bright_background"].to_numpy() > 0
        return (
            f"{int(bad.sum())} of {len(frame)} images have a bright background (inverted: ink "
            f"must be bright on dark), more than {cfg.max_bright_background_rate:.0%}{_rows(bad)}"
        )
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
