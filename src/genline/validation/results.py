"""The verdict: one `CheckOutcome` per named check in a JSON-able `ValidationResult`."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

SUITE_NAME = "genline_dataset"
CHECK_NAMES = (
    "readable",
    "has_min_rows",
    "image_shape_matches",
    "no_nan_or_inf",
    "pixels_in_range",
    "background_is_dark",
    "labels_in_set",
    "all_classes_present",
    "class_balance_within_bounds",
    "duplicate_rate_below_max",
    "class_intensity_matches_reference",
)
# Checks that compare a batch with the accepted reference rather than with what valid data is.
# A failure there is a change of style (thicker strokes, another pen), not invalid data: it is
# reported as a warning and never quarantines (docs/data.md, "What a reference check may block").
ADVISORY_CHECKS = ("class_intensity_matches_reference",)


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
        """The failed blocking checks: the reasons a batch is quarantined."""
        return [c for c in self.checks if not c.passed and c.name not in ADVISORY_CHECKS]

    @property
    def warned_checks(self) -> list[CheckOutcome]:
        """The failed advisory checks (ADVISORY_CHECKS): a new style, flagged, not rejected."""
        return [c for c in self.checks if not c.passed and c.name in ADVISORY_CHECKS]

    def check(self, name: str) -> CheckOutcome:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check named {name!r} in this result ({[c.name for c in self.checks]})")

    def summary(self) -> str:
        if self.success:
            warned = self.warned_checks
            if warned:
                return f"{self.source or 'dataset'}: accepted with warnings: " + "; ".join(
                    f"{c.name}: {c.summary}" for c in warned
                )
            return f"{self.source or 'dataset'}: all {len(self.checks)} checks passed"
        return f"{self.source or 'dataset'}: " + "; ".join(
            f"{c.name}: {c.summary}" for c in self.failed_checks
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["failed"] = [c.name for c in self.failed_checks]
        d["warned"] = [c.name for c in self.warned_checks]
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


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    return str(o)
