"""genline.data: loaders, canonical form, content-hash splits and every bad input."""

from __future__ import annotations

import numpy as np
import pytest

from genline.data import DataConfig, DataError, concat, load_dataset, load_source, split
from genline.imagefiles import load_image_folder
from genline.npzfiles import load_npz, save_npz
from tests.conftest import write_image_folder


def test_builtin_digits_canonical_form(digits):
    assert len(digits) == 1797 and digits.num_classes == 10
    assert digits.images.shape == (1797, 1, 8, 8) and digits.images.dtype == np.float32
    assert digits.images.min() == 0.0 and digits.images.max() == 1.0
    assert digits.labels.dtype == np.int64


def test_builtin_digits_are_scikit_learns_without_importing_it(digits):
    import subprocess
    import sys

    from sklearn.datasets import load_digits

    ref = load_digits()
    assert np.array_equal(digits.images[:, 0] * 16.0, ref.images.astype(np.float32))
    assert np.array_equal(digits.labels, ref.target)
    code = ("import sys; from genline.data import load_builtin; load_builtin(); "
            "print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_builtin_resize_to_16():
    ds = load_dataset(None, DataConfig(image_size=16))
    assert ds.images.shape == (1797, 1, 16, 16)
    assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0


def test_fingerprint_ignores_order_but_sees_content(digits):
    perm = np.random.default_rng(0).permutation(len(digits))
    shuffled = digits.subset(perm)
    assert shuffled.fingerprint == digits.fingerprint
    changed = digits.subset(np.arange(len(digits)))
    images = changed.images.copy()
    images[0, 0, 0, 0] = 0.5 if images[0, 0, 0, 0] != 0.5 else 0.25
    from genline.data import Dataset

    assert Dataset(images, digits.labels, digits.classes).fingerprint != digits.fingerprint


def test_split_is_stable_under_reordering_and_appends(digits):
    s = split(digits)
    assert len(s.train) + len(s.val) + len(s.test) == len(digits)
    assert 0.15 < len(s.test) / len(digits) < 0.25
    shuffled = split(digits.subset(np.random.default_rng(1).permutation(len(digits))))
    assert shuffled.test.fingerprint == s.test.fingerprint
    # appending new rows never moves an existing row to another split
    first = digits.subset(np.arange(1000))
    s_first = split(first)
    grown = split(digits)
    test_rows = {r.tobytes() for r in s_first.test.images}
    grown_train_rows = {r.tobytes() for r in grown.train.images}
    assert not test_rows & grown_train_rows


def test_npz_round_trip_keeps_fingerprint(tmp_path, digits):
    path = save_npz(digits, tmp_path / "d.npz")
    back = load_npz(path)
    assert back.fingerprint == digits.fingerprint
    assert back.classes == digits.classes


def test_npz_user_formats(tmp_path, digits):
    imgs = (digits.images[:, 0] * 255).astype(np.uint8)  # (N, H, W) uint8
    np.savez(tmp_path / "u8.npz", images=imgs, labels=digits.labels.astype(np.int32))
    ds = load_dataset(tmp_path / "u8.npz", DataConfig(image_size=12))
    assert ds.images.shape == (1797, 1, 12, 12) and ds.num_classes == 10


def test_image_folder_any_size_gray_or_rgb(tmp_path, digits):
    root = write_image_folder(tmp_path / "imgs", digits, per_class=10, size=20, rgb=True)
    ds = load_image_folder(root, DataConfig(image_size=8))
    assert ds.images.shape == (100, 1, 8, 8)
    assert ds.classes[0] == "class_0" and set(ds.class_counts().values()) == {10}
    ds3 = load_image_folder(root, DataConfig(image_size=8, channels=3))
    assert ds3.images.shape == (100, 3, 8, 8)


def test_concat_refuses_mismatched_classes(digits):
    other = digits.subset(np.arange(10))
    from genline.data import Dataset

    renamed = Dataset(other.images, other.labels, tuple(f"x{c}" for c in other.classes))
    with pytest.raises(DataError, match="classes"):
        concat([digits, renamed])


# --- bad input: a clear error naming what was wrong -----------------------------------------


def _npz(tmp_path, name="bad.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def _good(n=60, k=3):
    rng = np.random.default_rng(0)
    return rng.random((n, 8, 8), dtype=np.float32), (np.arange(n) % k).astype(np.int64)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda im, lb: {"images": im}, "missing array 'labels'"),
        (lambda im, lb: {"labels": lb}, "missing array 'images'"),
        (lambda im, lb: {"images": im, "labels": lb[:-1]}, "labels must have shape"),
        (lambda im, lb: {"images": im, "labels": lb.astype(np.float32)}, "must be integers"),
        (lambda im, lb: {"images": np.where(np.arange(60)[:, None, None] == 7, np.nan, im),
                         "labels": lb}, "row 7 contains NaN"),
        (lambda im, lb: {"images": np.where(np.arange(60)[:, None, None] == 3, np.inf, im),
                         "labels": lb}, "row 3 contains NaN or Inf"),
        (lambda im, lb: {"images": im * 3, "labels": lb}, "outside the declared range"),
        (lambda im, lb: {"images": im, "labels": np.zeros_like(lb)}, "at least two classes"),
        (lambda im, lb: {"images": im, "labels": np.where(np.arange(60) == 5, -1, lb)},
         "label -1 at row 5"),
        (lambda im, lb: {"images": im[:0], "labels": lb[:0]}, "empty"),
        (lambda im, lb: {"images": im[:, 0], "labels": lb}, r"\(N,H,W\) or \(N,C,H,W\)"),
    ],
)
def test_bad_npz(tmp_path, mutate, message):
    im, lb = _good()
    with pytest.raises(DataError, match=message):
        load_dataset(_npz(tmp_path, **mutate(im, lb)))


def test_class_too_small_to_split(tmp_path):
    im, lb = _good()
    lb[:] = np.where(np.arange(60) < 57, lb % 2, 2)  # class 2 has 3 images
    with pytest.raises(DataError, match="class '2' has 3 images"):
        load_dataset(_npz(tmp_path, images=im, labels=lb))


def test_not_an_npz(tmp_path):
    p = tmp_path / "x.npz"
    p.write_bytes(b"this is not a zip file")
    with pytest.raises(DataError, match="cannot be read as .npz"):
        load_dataset(p)


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_dataset(tmp_path / "nope")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="the folder is empty"):
        load_dataset(tmp_path / "empty")


def test_empty_class_folder(tmp_path, digits):
    root = write_image_folder(tmp_path / "imgs", digits, per_class=6)
    (root / "class_x").mkdir()
    with pytest.raises(DataError, match="class_x: class folder has no images"):
        load_dataset(root)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "zero-byte file"),
        (None, "cannot be read as an image"),  # truncated PNG
        (b"GIF89a not really", "cannot be read as an image"),
    ],
)
def test_bad_image_file(tmp_path, digits, content, message):
    root = write_image_folder(tmp_path / "imgs", digits, per_class=6)
    bad = root / "class_3" / "bad.png"
    if content is None:
        good = (root / "class_3" / "0001.png").read_bytes()
        content = good[: len(good) // 2]
    bad.write_bytes(content)
    with pytest.raises(DataError, match=f"bad.png: {message}"):
        load_dataset(root)


def test_non_image_suffix(tmp_path, digits):
    root = write_image_folder(tmp_path / "imgs", digits, per_class=6)
    (root / "class_1" / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="notes.txt: not an image file"):
        load_dataset(root)


def test_save_npz_leaves_nothing_half_written(tmp_path, digits, monkeypatch):
    target = tmp_path / "out.npz"

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        save_npz(digits, target)
    assert list(tmp_path.iterdir()) == []


def test_a_dataset_is_read_back_from_its_source_string(digits, tmp_path):
    """Dataset.source names where the data came from; load_source reads it back, also an .npz
    whose file name has no suffix (a Kubeflow artifact)."""
    artifact = tmp_path / "validate-dataset" / "dataset"
    artifact.parent.mkdir()
    (tmp_path / "d.npz").write_bytes(save_npz(digits, tmp_path / "d.npz").read_bytes())
    artifact.write_bytes((tmp_path / "d.npz").read_bytes())
    from_npz = load_npz(tmp_path / "d.npz")
    assert from_npz.source == f"npz:{tmp_path / 'd.npz'}"
    assert load_source(from_npz.source).fingerprint == digits.fingerprint
    assert load_source(f"npz:{artifact}").fingerprint == digits.fingerprint
    assert load_source(digits.source).fingerprint == digits.fingerprint  # builtin:uci-digits
    folder = write_image_folder(tmp_path / "imgs", digits, per_class=6, size=8)
    from_folder = load_image_folder(folder, DataConfig())
    assert load_source(from_folder.source).fingerprint == from_folder.fingerprint
    with pytest.raises(DataError, match="missing"):
        load_source(f"npz:{tmp_path / 'missing'}")
