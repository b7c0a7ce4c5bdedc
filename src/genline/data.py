"""Datasets: the built-in UCI digits, user image folders and .npz files, validated and split.

Every dataset is held as `images` (N, C, H, W) float32 in [0, 1] and `labels` (N,) int64 indexing
`classes`. Its fingerprint is a sha256 over canonical bytes (rows sorted by content), so it does not
depend on file order. Splits are decided per image by a hash of its content: stable under
reordering and appends, and identical images always land in the same split.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MIN_IMAGES_PER_CLASS = 5
VAL_FRACTION = 0.1
TEST_FRACTION = 0.2


class DataError(ValueError):
    """Input data that genline refuses, with a message naming the file, row or class at fault."""


@dataclass(frozen=True)
class DataConfig:
    """How images are brought to one shape.

    Attributes:
        image_size: side length H = W after resizing; None: the images' own size (see
            `native`): their shared size, or the most common one when sizes are mixed, at most
            MAX_NATIVE_SIZE on the long side.
        channels: 1 (grayscale) or 3 (RGB); None: 3 when any image is in colour, else 1.
    """

    image_size: int | None = 8
    channels: int | None = 1

    def __post_init__(self) -> None:
        if self.image_size is not None and not 4 <= self.image_size <= 256:
            raise DataError(f"image_size {self.image_size} outside 4-256")
        if self.channels not in (1, 3, None):
            raise DataError(f"channels must be 1 or 3, got {self.channels}")

    @property
    def is_resolved(self) -> bool:
        return self.image_size is not None and self.channels is not None

    def native(self, sizes: Sequence[tuple[int, int]],
               channels: Sequence[int]) -> tuple[DataConfig, str | None]:
        """Fill in the fields left to the data: (resolved config, a note saying what was
        chosen when the images did not already agree on it, else None).

        Args:
            sizes: (height, width) of each image as stored.
            channels: channels of each image as stored (1 or 3).
        """
        from collections import Counter

        notes = []
        size, chans = self.image_size, self.channels
        if size is None:
            counts = Counter(tuple(int(v) for v in hw) for hw in sizes)
            (h, w), _ = counts.most_common(1)[0]
            size = max(h, w)
            if len(counts) > 1:
                notes.append(f"images come in {len(counts)} sizes: trained at the most common, "
                             f"{h}x{w} ({counts[(h, w)]} of {sum(counts.values())} images)"
                             + (" made square" if h != w else ""))
            elif h != w:
                notes.append(f"images are {h}x{w}: made square at {size}x{size}")
            if size > MAX_NATIVE_SIZE:
                notes.append(f"images of {size} px on the long side are resized to "
                             f"{MAX_NATIVE_SIZE} (the largest native size; --image-size to "
                             "choose another)")
                size = MAX_NATIVE_SIZE
            size = max(size, 4)
        if chans is None:
            chans = 3 if any(int(c) == 3 for c in channels) else 1
        note = "; ".join(notes) if notes else None
        return DataConfig(image_size=size, channels=chans), note


MAX_NATIVE_SIZE = 64
NATIVE = DataConfig(image_size=None, channels=None)  # the images' own size and channels


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images and labels in genline's canonical form.

    Attributes:
        images: (N, C, H, W) float32 in [0, 1].
        labels: (N,) int64 in 0..len(classes)-1.
        classes: class names; label i means classes[i].
        source: where it came from (for messages and lineage).
        notes: what loading did to the data that a user should hear about (e.g. resizing).
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    source: str = ""
    notes: tuple[str, ...] = ()
    _fingerprint: list = field(default_factory=list, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=self.num_classes)
        return {name: int(c) for name, c in zip(self.classes, counts, strict=True)}

    @property
    def fingerprint(self) -> str:
        """sha256 over the classes, shape and the rows in canonical (content-sorted) order."""
        if not self._fingerprint:
            order = canonical_order(self.images, self.labels)
            h = hashlib.sha256()
            h.update(json.dumps({"classes": list(self.classes),
                                 "shape": list(self.images.shape)}).encode())
            h.update(np.ascontiguousarray(self.images[order], dtype="<f4").tobytes())
            h.update(np.ascontiguousarray(self.labels[order], dtype="<i8").tobytes())
            self._fingerprint.append(h.hexdigest())
        return self._fingerprint[0]

    def subset(self, index: np.ndarray, source: str | None = None) -> Dataset:
        return Dataset(self.images[index], self.labels[index], self.classes,
                       source if source is not None else self.source)

    def info(self) -> dict:
        """JSON-able summary that travels into every artifact made from this dataset."""
        return {
            "fingerprint": self.fingerprint,
            "num_rows": len(self),
            "classes": list(self.classes),
            "class_counts": self.class_counts(),
            "image_shape": list(self.image_shape),
            "source": self.source,
        }


@dataclass(frozen=True)
class Splits:
    train: Dataset
    val: Dataset
    test: Dataset


# --- hashing and splitting --------------------------------------------------------------------


def row_hashes(images: np.ndarray) -> list[bytes]:
    """sha256 digest of each image's canonical float32 bytes."""
    flat = np.ascontiguousarray(images, dtype="<f4").reshape(len(images), -1)
    return [hashlib.sha256(row.tobytes()).digest() for row in flat]


def canonical_order(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Row order sorted by (image hash, label): independent of input order."""
    n = len(images)
    # big-endian uint64 words compare like the digest bytes: lexsort == sorting by (digest, label)
    words = np.frombuffer(b"".join(row_hashes(images)), dtype=">u8").reshape(n, 4)
    keys = (np.asarray(labels, np.int64), words[:, 3], words[:, 2], words[:, 1], words[:, 0])
    return np.lexsort(keys).astype(np.int64)


def split(ds: Dataset, val_fraction: float = VAL_FRACTION,
          test_fraction: float = TEST_FRACTION) -> Splits:
    """Split by a hash of each image's content.

    Raises:
        DataError: if a class ends up with no training or no test image.
    """
    u = np.array([int.from_bytes(h[:8], "big") / 2**64 for h in row_hashes(ds.images)])
    test = u < test_fraction
    val = (u >= test_fraction) & (u < test_fraction + val_fraction)
    train = ~(test | val)
    for k, name in enumerate(ds.classes):
        in_class = ds.labels == k
        for part, mask in (("train", train), ("test", test)):
            if not np.any(in_class & mask):
                raise DataError(
                    f"class {name!r} has {int(in_class.sum())} images in {ds.source or 'dataset'}"
                    f"; the content-hash split put none into {part}: add more images of it")
    return Splits(ds.subset(np.flatnonzero(train), f"{ds.source}#train"),
                  ds.subset(np.flatnonzero(val), f"{ds.source}#val"),
                  ds.subset(np.flatnonzero(test), f"{ds.source}#test"))


# --- validation ---------------------------------------------------------------------------------


def check_arrays(images: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                 where: str) -> None:
    """Raise DataError naming the first problem with (N,C,H,W) images and (N,) labels."""
    if images.ndim != 4:
        raise DataError(f"{where}: images must be (N, C, H, W), got shape {images.shape}")
    n = images.shape[0]
    if n == 0:
        raise DataError(f"{where}: the dataset is empty")
    if labels.ndim != 1 or labels.shape[0] != n:
        raise DataError(f"{where}: labels must be ({n},) to match the images, got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{where}: labels must be integers, got dtype {labels.dtype}")
    if not np.issubdtype(images.dtype, np.floating):
        raise DataError(f"{where}: images must be float here, got dtype {images.dtype}")
    finite = np.isfinite(images.reshape(n, -1)).all(axis=1)
    if not finite.all():
        raise DataError(f"{where}: row {int(np.flatnonzero(~finite)[0])} contains NaN or Inf")
    flat = images.reshape(n, -1)
    bad = (flat.min(axis=1) < 0.0) | (flat.max(axis=1) > 1.0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where}: row {row} has values in [{flat[row].min():g}, "
                        f"{flat[row].max():g}], outside the declared range [0, 1]")
    bad_label = (labels < 0) | (labels >= len(classes))
    if bad_label.any():
        row = int(np.flatnonzero(bad_label)[0])
        raise DataError(f"{where}: label {int(labels[row])} at row {row} outside "
                        f"0-{len(classes) - 1}")
    present = np.unique(labels)
    if len(present) < 2:
        raise DataError(f"{where}: needs at least two classes, found {len(present)}")
    counts = np.bincount(labels, minlength=len(classes))
    for k, name in enumerate(classes):
        if counts[k] < MIN_IMAGES_PER_CLASS:
            raise DataError(f"{where}: class {name!r} has {int(counts[k])} images, fewer than "
                            f"the {MIN_IMAGES_PER_CLASS} needed to split it")


def make_dataset(images: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                 source: str) -> Dataset:
    """Validate and wrap arrays already in canonical form."""
    labels = np.asarray(labels)
    check_arrays(images, labels, classes, source)
    return Dataset(np.ascontiguousarray(images, dtype=np.float32),
                   labels.astype(np.int64), tuple(str(c) for c in classes), source)


# --- resizing -----------------------------------------------------------------------------------


def resize_images(images: np.ndarray, cfg: DataConfig) -> np.ndarray:
    """(N, C, h, w) float in [0,1] -> (N, cfg.channels, S, S), channels converted by luminance."""
    from PIL import Image

    n, c, h, w = images.shape
    if c == 3 and cfg.channels == 1:
        images = (images * np.array([0.299, 0.587, 0.114], np.float32)[None, :, None, None]).sum(
            axis=1, keepdims=True)
    elif c == 1 and cfg.channels == 3:
        images = np.repeat(images, 3, axis=1)
    elif c not in (1, 3):
        raise DataError(f"images have {c} channels; genline reads 1 (gray) or 3 (RGB)")
    s = cfg.image_size
    if (h, w) == (s, s):
        return np.clip(images.astype(np.float32), 0.0, 1.0)
    out = np.empty((n, cfg.channels, s, s), np.float32)
    for i in range(n):
        for ch in range(cfg.channels):
            img = Image.fromarray(images[i, ch].astype(np.float32), mode="F")
            out[i, ch] = np.asarray(img.resize((s, s), Image.Resampling.BOX), np.float32)
    return np.clip(out, 0.0, 1.0)


def resize_note(sizes: Sequence[tuple[int, int]], cfg: DataConfig) -> str | None:
    """One line saying what resizing did, or None when every image already had the target size.

    Args:
        sizes: (height, width) of each image as stored.
    """
    from collections import Counter

    counts = Counter(tuple(int(v) for v in hw) for hw in sizes)
    target = (cfg.image_size, cfg.image_size)
    if set(counts) <= {target}:
        return None
    seen = ", ".join(f"{h}x{w} ({n})" for (h, w), n in counts.most_common(6))
    more = f" and {len(counts) - 6} more sizes" if len(counts) > 6 else ""
    resized = sum(n for hw, n in counts.items() if hw != target)
    return (f"resized {resized} of {sum(counts.values())} images to {target[0]}x{target[1]} "
            f"(--image-size); sizes seen HxW (count): {seen}{more}")



# --- loaders ------------------------------------------------------------------------------------


def _uci_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 8, 8) in 0-16, labels (N,)): the file scikit-learn's `load_digits` reads,
    read the same way without importing scikit-learn (4.4 s per process here, paid by every
    Kubeflow step and CLI call that uses the built-in data)."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # locates the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the built-in digits ship with scikit-learn, which is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        raise DataError(f"the built-in digits are missing from scikit-learn: {path}")
    data = np.loadtxt(path, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)


def load_builtin(cfg: DataConfig = DataConfig()) -> Dataset:
    """The UCI handwritten digits shipped in scikit-learn: 1,797 images, values 0-16, 10 classes."""
    raw, target = _uci_digits()
    images = (raw.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8)
    if not cfg.is_resolved:
        cfg, _ = cfg.native([(8, 8)], [1])
    images = resize_images(images, cfg)
    return make_dataset(images, target, [str(d) for d in range(10)], "builtin:uci-digits")


def load_dataset(path: str | Path | None = None, cfg: DataConfig = DataConfig()) -> Dataset:
    """None: built-in digits; a directory: image folder; a .npz file: arrays."""
    if path is None or str(path) in ("", "builtin"):
        return load_builtin(cfg)
    p = Path(path)
    if p.is_dir():
        from genline.imagefiles import load_image_folder

        return load_image_folder(p, cfg)
    if p.suffix == ".npz":
        from genline.npzfiles import load_npz

        return load_npz(p, cfg)
    if not p.exists():
        raise DataError(f"{p}: no such file or directory")
    raise DataError(f"{p}: expected a folder with one subfolder per class or an .npz file")


def load_source(source: str, cfg: DataConfig | None = None) -> Dataset:
    """Read a dataset back from its `Dataset.source` string ("builtin:...", "npz:PATH",
    "folder:PATH"; a bare path is read by `load_dataset`). An "npz:" file is read whatever its
    name (a Kubeflow artifact has no suffix). With `cfg=None` an .npz keeps its stored size.

    Raises:
        DataError: the source cannot be read (the message names it).
    """
    kind, sep, rest = str(source).partition(":")
    if sep and kind == "builtin":
        return load_builtin(cfg or DataConfig())
    if sep and kind == "npz":
        from genline.npzfiles import load_npz

        return load_npz(rest, cfg)
    if sep and kind == "folder":
        from genline.imagefiles import load_image_folder

        return load_image_folder(Path(rest), cfg or DataConfig())
    return load_dataset(source, cfg or DataConfig())


def concat(datasets: Sequence[Dataset], source: str = "concat") -> Dataset:
    """Union of datasets with the same classes and image shape."""
    if not datasets:
        raise DataError("concat needs at least one dataset")
    first = datasets[0]
    for d in datasets[1:]:
        if d.classes != first.classes:
            raise DataError(f"{d.source}: classes {list(d.classes)} differ from "
                            f"{list(first.classes)} of {first.source}")
        if d.image_shape != first.image_shape:
            raise DataError(f"{d.source}: image shape {d.image_shape} differs from "
                            f"{first.image_shape} of {first.source}")
    return Dataset(np.concatenate([d.images for d in datasets]),
                   np.concatenate([d.labels for d in datasets]), first.classes, source)
