"""Drift settings: `DriftConfig` with its calibrated defaults, loaded from defaults, then
`$GENLINE_HOME/drift.toml`, then GENLINE_DRIFT_* variables (docs/drift.md says why each default)."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

CONFIG_FILE = "drift.toml"
ENV_PREFIX = "GENLINE_DRIFT_"


class DriftConfigError(ValueError):
    """A drift setting that is unknown or has the wrong type or range."""


@dataclass(frozen=True)
class DriftConfig:
    """Every drift setting, with the calibrated defaults (docs/drift.md says why).

    Attributes:
        min_samples: rows per label (in the window and in what it is compared with) for the label
            to be tested; with no testable label the verdict is "insufficient_data".
        window_minutes: length of one monitoring window (Dagster partitions).
        report_keep: HTML reports kept per report directory (the verdict numbers stay forever).
        report_columns: (label, feature) keys drawn in the Evidently HTML report (the highest
            scores; rendering every key costs ~0.3 s each).
        report_sample: rows per side the HTML report is rendered on.
        max_rows_per_label: current rows per label the statistics use (a seeded subsample above
            it: 1e6-row windows cost about what 1e5-row windows cost).
        serving_stat_test, serving_alpha, serving_min_effect: serving health's named tests: KS
            p < serving_alpha / keys (family-wise) and normalised Wasserstein >= serving_min_effect.
        label_stat_test, label_alpha, label_min_tvd: request mix on label shares: G-test
            p < label_alpha and total variation distance >= label_min_tvd.
        z_stat_test, z_alpha, z_min_effect: request mix on the latent: one-sample KS vs the exact
            distribution, p < z_alpha / 2 and KS statistic >= z_min_effect.
        z_filter_p: a row's latent counts as a N(0, I) draw when neither its z_norm^2 (chi2(D))
            nor its z_mean (normal) is beyond this two-sided tail probability.
        staleness_stat_test, staleness_margin, staleness_max_rows: staleness: unbiased MMD^2
            (Gaussian kernel, median-heuristic bandwidth fixed at publish) averaged over labels;
            drift when it exceeds the publish-time value by staleness_margin; at most
            staleness_max_rows rows per label per side enter the kernel sums.
        input_alpha, input_min_effect: input_batch's KS and Wasserstein limits.
    """

    min_samples: int = 30
    window_minutes: float = 60.0
    report_keep: int = 48
    report_columns: int = 8
    report_sample: int = 2000
    max_rows_per_label: int = 20000
    serving_stat_test: str = "ks+wasserstein"
    serving_alpha: float = 0.01
    serving_min_effect: float = 0.1
    label_stat_test: str = "g_test+tvd"
    label_alpha: float = 0.01
    label_min_tvd: float = 0.05
    z_stat_test: str = "ks_exact"
    z_alpha: float = 0.01
    z_min_effect: float = 0.05
    z_filter_p: float = 1e-4
    staleness_stat_test: str = "mmd2_unbiased"
    staleness_margin: float = 0.05
    staleness_max_rows: int = 400
    input_alpha: float = 0.01
    input_min_effect: float = 0.1

    def __post_init__(self) -> None:
        for name in ("min_samples", "report_keep", "report_columns", "report_sample",
                     "max_rows_per_label", "staleness_max_rows"):
            if getattr(self, name) < 1:
                raise DriftConfigError(f"drift setting {name} must be >= 1, got "
                                       f"{getattr(self, name)}")
        if self.min_samples < 2:
            raise DriftConfigError(f"drift setting min_samples must be >= 2, got "
                                   f"{self.min_samples}")
        for name in ("serving_alpha", "label_alpha", "z_alpha", "z_filter_p", "input_alpha"):
            if not 0 < getattr(self, name) < 1:
                raise DriftConfigError(f"drift setting {name} must be in (0, 1), got "
                                       f"{getattr(self, name)}")
        if not self.window_minutes > 0:
            raise DriftConfigError(f"drift setting window_minutes must be > 0, got "
                                   f"{self.window_minutes}")

    @classmethod
    def load(cls, path: str | Path | None = None,
             env: Mapping[str, str] | None = None) -> DriftConfig:
        """Defaults, then `$GENLINE_HOME/drift.toml` (or `path`), then GENLINE_DRIFT_* variables.

        Raises:
            DriftConfigError: an unknown key, or a value of the wrong type or range (the message
                names the key and where it came from).
        """
        from genline.paths import state_dir

        env = os.environ if env is None else env
        known = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        toml_path = Path(path) if path is not None else state_dir() / CONFIG_FILE
        if toml_path.is_file():
            try:
                data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise DriftConfigError(f"{toml_path}: not valid TOML ({exc})") from exc
            data = data.get("drift", data)
            for key, raw in data.items():
                values[key] = _coerce(key, raw, known, str(toml_path))
        for var, raw in env.items():
            if var.startswith(ENV_PREFIX):
                key = var[len(ENV_PREFIX):].lower()
                values[key] = _coerce(key, raw, known, var)
        return replace(cls(), **values)


def _coerce(key: str, raw: Any, known: dict[str, Any], where: str) -> Any:
    if key not in known:
        raise DriftConfigError(f"{where}: unknown drift setting {key!r} (known: {sorted(known)})")
    kind = {"int": int, "float": float, "str": str}[str(known[key])]
    try:
        if kind is int and isinstance(raw, float) and not raw.is_integer():
            raise ValueError(raw)
        return kind(raw)
    except (TypeError, ValueError) as exc:
        raise DriftConfigError(f"{where}: drift setting {key} must be {kind.__name__}, got "
                               f"{raw!r}") from exc
