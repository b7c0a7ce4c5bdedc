"""The suite's bounds (`ValidationConfig`) and what a batch is compared with (`ReferenceStats`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from genline.validation.tables import mean_intensity

if TYPE_CHECKING:
    from genline.data import Dataset


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
            (class_intensity_matches_reference is advisory: outside the bound is a warning.)
        max_bright_background_rate: largest share of images whose corners are bright
            (inverted: white background), for background_is_dark.
    """

    min_rows: int = 20
    image_shape: tuple[int, int, int] | None = None
    classes: tuple[str, ...] | None = None
    class_share_min_factor: float = 0.4
    class_share_max_factor: float = 2.5
    max_duplicate_rate: float = 0.05
    intensity_z: float = 6.0
    intensity_abs_tol: float = 0.02
    max_bright_background_rate: float = 0.05

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
        if not 0 <= self.max_bright_background_rate < 1:
            raise ValueError(
                "max_bright_background_rate must be in [0, 1), got "
                f"{self.max_bright_background_rate}"
            )
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
        means = mean_intensity(ds.images)
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
