"""The quality gate: floors on the metrics, the champion comparison, and whether the evaluation
itself can be trusted. Fails closed on anything missing, NaN or untrustworthy.

The metrics come from genline.evaluate; this module only judges them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from genline.data import TEST_FRACTION

GATED_METRICS = ("fd_ratio", "conditional_accuracy_ratio", "diversity_ratio")
REQUIRED_METRICS = ("fd", "fd_real", "fd_ratio", "conditional_accuracy", "evaluator_accuracy",
                    "diversity_ratio", "nn_distance_ratio", "min_test_images_per_class")

@dataclass(frozen=True)
class GateConfig:
    """Floors of the quality gate, and when its own evaluation counts.

    Attributes:
        max_fd_ratio: fd / fd_real must not exceed this.
        min_conditional_accuracy_ratio: conditional_accuracy / evaluator_accuracy floor.
        min_diversity_ratio: generated / real intra-class spread floor.
        min_nn_distance_ratio: floor of the copying measure (mean nearest-train-neighbour
            distance of generated samples over that of real test images); below it the
            generator reproduces its training images.
        min_test_images_per_class: the evaluation is trusted only when every class has at least
            this many real test images. 20 because every metric is a per-class estimate from
            these images: the intra-class spread behind diversity_ratio and the per-class share
            behind conditional accuracy have a standard error of about 1/sqrt(2n) and
            sqrt(p(1-p)/n), roughly 0.16 and 0.07 at n = 20 and twice that at n = 5; and FD's
            covariance needs many more rows than a handful per class. The built-in digits have
            30-37 per class.
        min_evaluator_accuracy: the evaluation is trusted only when genline's evaluator itself
            classifies the real test images at least this well. Its features define FD and its
            predictions define conditional accuracy; an evaluator near chance (1/K) makes both
            meaningless (a noise dataset gave 0.385 for 2 classes and a conditional-accuracy
            ratio of 2.0). 0.8 is well above chance for any K >= 2 and below the 0.98 the
            evaluator reaches on the digits.
        champion_margin: tolerance: relative amount by which a challenger may be worse than
            the champion on conditional_accuracy_ratio and diversity_ratio.
        champion_min_gain: the challenger must improve on the champion's fd_ratio by at least
            this fraction (fd_ratio <= champion's * (1 - champion_min_gain)). Both are scored on
            the same new data by the same evaluator, so the difference is the models'; 0.02
            because a re-scored copy of one model differs by far less (its samples are seeded),
            while a challenger trained on a new style beats a stale champion by tens of percent.

    A challenger WINS against a champion when it passes every floor and trust check, improves
    fd_ratio by champion_min_gain, and is not worse beyond champion_margin on the other gated
    metrics. Only a winner publishes; `champion_losses` says which metric lost and by how much.
    """

    max_fd_ratio: float = 3.0
    min_conditional_accuracy_ratio: float = 0.92
    min_diversity_ratio: float = 0.7
    min_nn_distance_ratio: float = 0.7
    min_test_images_per_class: int = 20
    min_evaluator_accuracy: float = 0.8
    champion_margin: float = 0.05
    champion_min_gain: float = 0.02

    @classmethod
    def from_record(cls, gate: dict[str, Any]) -> GateConfig:
        """The config a gate.json was checked with (keys this version does not know ignored)."""
        return cls(**{k: v for k, v in (gate.get("config") or {}).items()
                      if k in cls.__dataclass_fields__})


@dataclass
class GateResult:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _number(metrics: dict[str, Any] | None, key: str) -> float | None:
    if not metrics or key not in metrics:
        return None
    v = metrics[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def check_gate(metrics: dict[str, Any] | None, champion: dict[str, Any] | None = None,
               cfg: GateConfig = GateConfig()) -> GateResult:
    """Apply the floors and the champion comparison. Fails closed on anything missing or NaN."""
    reasons: list[str] = []
    checks: dict[str, dict[str, Any]] = {}
    if not metrics:
        return GateResult(False, ["no metrics: the gate fails closed"], {})
    for key in REQUIRED_METRICS + ("conditional_accuracy_ratio",):
        if _number(metrics, key) is None:
            reasons.append(f"metric {key} is missing or not a finite number "
                           f"({metrics.get(key)!r}): the gate fails closed")
    _trust_checks(metrics, cfg, reasons, checks)
    floors = (
        ("fd_ratio", "<=", cfg.max_fd_ratio),
        ("conditional_accuracy_ratio", ">=", cfg.min_conditional_accuracy_ratio),
        ("diversity_ratio", ">=", cfg.min_diversity_ratio),
    )
    copying = ("nn_distance_ratio", ">=", cfg.min_nn_distance_ratio)
    for key, op, bound in (*floors, copying):
        v = _number(metrics, key)
        ok = v is not None and (v <= bound if op == "<=" else v >= bound)
        checks[key] = {"value": v, "op": op, "bound": bound, "passed": ok}
        if v is not None and not ok:
            reasons.append(f"{key} = {v:.4f} violates {op} {bound}")
    if champion is not None:
        _champion_checks(metrics, champion, cfg, floors, reasons, checks)
    return GateResult(not reasons, reasons, checks)


def _champion_checks(metrics: dict[str, Any], champion: dict[str, Any], cfg: GateConfig,
                     floors: tuple[tuple[str, str, float], ...], reasons: list[str],
                     checks: dict[str, dict[str, Any]]) -> None:
    """The challenger's comparison with the champion (see GateConfig: what winning means)."""
    m, gain = cfg.champion_margin, cfg.champion_min_gain
    for key, op, _ in floors:
        c, v = _number(champion, key), _number(metrics, key)
        name = f"champion:{key}"
        if c is None:
            reasons.append(f"champion metric {key} is missing or not finite: cannot compare, "
                           "the gate fails closed")
            checks[name] = {"value": v, "champion": None, "passed": False}
            continue
        if key == "fd_ratio":  # the metric a challenger must win on
            bound = c * (1 - gain)
            rule = f"at least {gain:.0%} better than"
        else:  # the others may not get worse beyond the tolerance
            bound = c * (1 + m) if op == "<=" else c * (1 - m)
            rule = f"no more than {m:.0%} worse than"
        ok = v is not None and (v <= bound if op == "<=" else v >= bound)
        change = None if v is None or c == 0 else (v - c) / abs(c)
        checks[name] = {"value": v, "champion": c, "op": op, "bound": bound, "passed": ok,
                        "relative_change": change, "rule": rule}
        if v is not None and not ok:
            by = "n/a" if change is None else f"{change:+.1%}"
            reasons.append(f"challenger lost on {key}: {v:.4f} vs the champion's {c:.4f} "
                           f"({by}); it must be {rule} the champion")


def champion_losses(gate: GateResult | dict[str, Any]) -> list[dict[str, Any]]:
    """The champion comparisons a challenger lost: metric, value, champion, bound, change.

    Args:
        gate: a GateResult or its JSON (gate.json).

    Returns:
        One entry per failed `champion:<metric>` check (empty when it won or had no champion).
    """
    checks = gate.checks if isinstance(gate, GateResult) else (gate.get("checks") or {})
    return [
        {"metric": name.split(":", 1)[1], **{k: c.get(k) for k in (
            "value", "champion", "op", "bound", "relative_change", "rule")}}
        for name, c in checks.items()
        if name.startswith("champion:") and not c.get("passed")
    ]


def floors_passed(gate: GateResult | dict[str, Any]) -> bool:
    """Whether every non-champion check passed (the model is good, whatever the champion)."""
    checks = gate.checks if isinstance(gate, GateResult) else (gate.get("checks") or {})
    return bool(checks) and all(c.get("passed") for name, c in checks.items()
                                if not name.startswith("champion:"))


def _trust_checks(metrics: dict[str, Any], cfg: GateConfig, reasons: list[str],
                  checks: dict[str, dict[str, Any]]) -> None:
    """Whether the evaluation itself counts: enough real test images, an evaluator that works."""
    n_min = _number(metrics, "min_test_images_per_class")
    ok = n_min is not None and n_min >= cfg.min_test_images_per_class
    checks["min_test_images_per_class"] = {"value": n_min, "op": ">=", "passed": ok,
                                           "bound": cfg.min_test_images_per_class}
    if n_min is not None and not ok:
        counts = metrics.get("test_images_per_class") or {}
        short = [f"{name!r}: {c}" for name, c in counts.items()
                 if c < cfg.min_test_images_per_class]
        reasons.append(
            f"the evaluation cannot be trusted: {int(n_min)} real test images in the smallest "
            f"class, fewer than min_test_images_per_class = {cfg.min_test_images_per_class} "
            f"({', '.join(short)}); the test split is {TEST_FRACTION:.0%} of the data, so "
            f"bring at least {math.ceil(cfg.min_test_images_per_class / TEST_FRACTION)} "
            "images per class")
    acc = _number(metrics, "evaluator_accuracy")
    ok = acc is not None and acc >= cfg.min_evaluator_accuracy
    checks["evaluator_accuracy"] = {"value": acc, "op": ">=", "passed": ok,
                                    "bound": cfg.min_evaluator_accuracy}
    if acc is not None and not ok:
        k = _number(metrics, "num_classes")
        chance = f" (chance for {int(k)} classes is {1 / k:.3f})" if k else ""
        reasons.append(
            f"the evaluation cannot be trusted: evaluator accuracy {acc:.3f} on the real test "
            f"images is below min_evaluator_accuracy = {cfg.min_evaluator_accuracy}{chance}; "
            "its features and predictions cannot tell the classes apart, so FD and "
            "conditional accuracy mean nothing")
