"""DVC versions: recorded only after a successful push, restorable byte for byte, serialised."""

from __future__ import annotations

import multiprocessing as mp
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from genline.data import Dataset
from genline.npzfiles import save_npz
from genline.versioning import (
    TRACKED_NAME,
    DvcConfig,
    VersioningError,
    checkout,
    commit_dataset,
    current_version,
    list_versions,
    md5_file,
    repo_lock,
    resolve_version,
    verify_in_remote,
)

DVC = str(Path(sys.executable).parent / "dvc")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def _npz(ds: Dataset, rows: int, path: Path) -> Path:
    return save_npz(ds.subset(np.arange(rows)), path)


@pytest.fixture()
def cfg(tmp_path) -> DvcConfig:
    return DvcConfig.default(tmp_path / "v")


def test_commit_is_pushed_idempotent_and_listed(cfg, digits, tmp_path):
    a = _npz(digits, 300, tmp_path / "a.npz")
    v1, new = commit_dataset(cfg, a, {"num_rows": 300}, message="first")
    assert new and v1.md5 == md5_file(a) and v1.info["num_rows"] == 300
    assert verify_in_remote(cfg, v1.md5)
    remote_obj = Path(cfg.remote_url) / "files" / "md5" / v1.md5[:2] / v1.md5[2:]
    assert remote_obj.read_bytes() == a.read_bytes()
    again, new = commit_dataset(cfg, a, {"num_rows": 300})
    assert not new and again.commit == v1.commit
    b = _npz(digits, 500, tmp_path / "b.npz")
    v2, new = commit_dataset(cfg, b, {"num_rows": 500})
    assert new and [v.md5 for v in list_versions(cfg)] == [v2.md5, v1.md5]
    assert resolve_version(cfg, v1.md5[:8]).commit == v1.commit
    assert resolve_version(cfg, "latest").md5 == v2.md5
    with pytest.raises(VersioningError, match="no dataset version"):
        resolve_version(cfg, "abcdef123")
    assert _git(cfg.repo_dir, "status", "--porcelain") == ""


def test_checkout_restores_old_version_from_remote_byte_for_byte(cfg, digits, tmp_path):
    a = _npz(digits, 300, tmp_path / "a.npz")
    v1, _ = commit_dataset(cfg, a)
    commit_dataset(cfg, _npz(digits, 400, tmp_path / "b.npz"))
    shutil.rmtree(cfg.repo_dir / ".dvc" / "cache")  # force a fetch from the remote
    v, out = checkout(cfg, v1.md5[:10], tmp_path / "restored.npz")
    assert v.md5 == v1.md5 and out.read_bytes() == a.read_bytes()


@pytest.mark.integration
def test_fresh_clone_dvc_pull_restores_each_version(cfg, digits, tmp_path):
    files = [_npz(digits, n, tmp_path / f"{n}.npz") for n in (200, 350)]
    versions = [commit_dataset(cfg, f)[0] for f in files]
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(cfg.repo_dir), str(clone)], check=True)
    for f, v in zip(files, versions, strict=True):
        _git(clone, "checkout", "-q", v.commit)
        proc = subprocess.run([DVC, "pull", "-q"], cwd=clone, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert (clone / TRACKED_NAME).read_bytes() == f.read_bytes()


def _assert_unchanged(cfg: DvcConfig, head) -> None:
    assert current_version(cfg).commit == head.commit
    assert _git(cfg.repo_dir, "status", "--porcelain", "--", f"{TRACKED_NAME}.dvc") == ""
    assert md5_file(cfg.repo_dir / TRACKED_NAME) == head.md5


@pytest.mark.parametrize("remote", ["not_a_directory", "closed_port", "read_only_http"])
def test_push_failure_does_not_advance_the_version(
    cfg, digits, tmp_path, remote, read_only_http_remote
):
    head, _ = commit_dataset(cfg, _npz(digits, 300, tmp_path / "a.npz"))
    url = {
        "not_a_directory": str(tmp_path / "a.npz" / "remote"),
        "closed_port": "http://127.0.0.1:9/remote",
        "read_only_http": read_only_http_remote,
    }[remote]
    bad = DvcConfig(cfg.repo_dir, url, lock_timeout_s=5)
    with pytest.raises(VersioningError, match="dvc push .* failed.*not advanced"):
        commit_dataset(bad, _npz(digits, 400, tmp_path / "b.npz"))
    _assert_unchanged(cfg, head)


def test_first_push_failure_leaves_no_version(digits, tmp_path):
    bad = DvcConfig(tmp_path / "repo", "http://127.0.0.1:9/remote")
    with pytest.raises(VersioningError):
        commit_dataset(bad, _npz(digits, 300, tmp_path / "a.npz"))
    assert current_version(bad) is None
    assert not (bad.repo_dir / f"{TRACKED_NAME}.dvc").exists()


def test_lock_held_elsewhere_fails_cleanly_after_timeout(cfg, digits, tmp_path):
    head, _ = commit_dataset(cfg, _npz(digits, 300, tmp_path / "a.npz"))
    impatient = DvcConfig(cfg.repo_dir, cfg.remote_url, lock_timeout_s=0.3)
    with repo_lock(cfg), pytest.raises(VersioningError, match="held the dataset lock"):
        commit_dataset(impatient, _npz(digits, 400, tmp_path / "b.npz"))
    _assert_unchanged(cfg, head)


def _commit_in_child(cfg: DvcConfig, path: str, q) -> None:
    try:
        v, new = commit_dataset(cfg, path)
        q.put(("ok", v.md5, new))
    except Exception as exc:  # reported to the parent, which fails the test
        q.put(("error", repr(exc), False))


@pytest.mark.integration
def test_two_concurrent_commits_serialise_without_corruption(cfg, digits, tmp_path):
    commit_dataset(cfg, _npz(digits, 100, tmp_path / "base.npz"))
    files = [_npz(digits, n, tmp_path / f"{n}.npz") for n in (300, 450)]
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_commit_in_child, args=(cfg, str(f), q)) for f in files]
    for p in procs:
        p.start()
    results = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(r[0] == "ok" and r[2] for r in results), results
    versions = list_versions(cfg)
    assert len(versions) == 3
    assert {v.md5 for v in versions[:2]} == {md5_file(f) for f in files}
    subprocess.run(
        ["git", "-C", str(cfg.repo_dir), "fsck", "--strict"], check=True, capture_output=True
    )
    assert _git(cfg.repo_dir, "status", "--porcelain") == ""
    for v in versions:  # every recorded version is still restorable from the remote
        assert verify_in_remote(cfg, v.md5)
        _, out = checkout(cfg, v.md5, tmp_path / f"out-{v.md5}.npz")
        assert md5_file(out) == v.md5
