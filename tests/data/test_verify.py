"""`genline data verify`: every byte re-hashed, bad objects named, a corrupt cache repaired."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from genline.cli import cli
from genline.npzfiles import save_npz
from genline.versioning import DvcConfig, commit_dataset, md5_file


def _overwrite(path: Path, data: bytes) -> None:
    os.chmod(path, 0o644)  # DVC stores objects read-only
    path.write_bytes(data)


def _verify(cfg: DvcConfig, *args: str):
    return CliRunner().invoke(
        cli, ["data", "verify", *args, "--repo", str(cfg.repo_dir), "--remote", cfg.remote_url]
    )


@pytest.fixture()
def two_versions(tmp_path, digits):
    cfg = DvcConfig.default(tmp_path / "v")
    a, _ = commit_dataset(cfg, save_npz(digits.subset(np.arange(200)), tmp_path / "a.npz"))
    b, _ = commit_dataset(cfg, save_npz(digits.subset(np.arange(300)), tmp_path / "b.npz"))
    return cfg, a.md5, b.md5


def _remote_obj(cfg: DvcConfig, md5: str) -> Path:
    return Path(cfg.remote_url) / "files" / "md5" / md5[:2] / md5[2:]


def test_clean_repository_verifies(two_versions):
    cfg, a, b = two_versions
    out = _verify(cfg)
    assert out.exit_code == 0, out.output
    assert out.output.count("ok ") == 4  # two versions, remote and cache each


def test_deleted_and_corrupted_remote_objects_are_named(two_versions):
    cfg, a, b = two_versions
    _remote_obj(cfg, a).unlink()
    body = _remote_obj(cfg, b).read_bytes()
    _overwrite(_remote_obj(cfg, b), body[:-10] + b"0123456789")  # same size, other bytes
    out = _verify(cfg)
    assert out.exit_code == 1
    assert f"remote:files/md5/{a[:2]}/{a[2:]} (missing)" in out.output
    assert f"remote:files/md5/{b[:2]}/{b[2:]} (corrupt)" in out.output
    only_a = _verify(cfg, a[:8])  # one version: only its object is judged
    assert only_a.exit_code == 1 and b[2:] not in only_a.output


def test_corrupt_cache_is_detected_then_repaired_from_the_remote(two_versions):
    cfg, a, b = two_versions
    cached = cfg.repo_dir / ".dvc" / "cache" / "files" / "md5" / b[:2] / b[2:]
    good = cached.read_bytes()
    _overwrite(cached, b"\0" * len(good))
    tracked = cfg.repo_dir / "training_dataset.npz"
    if md5_file(tracked) == b:  # a copy, not a link: damage it too, repair must restore it
        _overwrite(tracked, b"\0" * len(good))
    out = _verify(cfg)
    assert out.exit_code == 1
    assert f"cache:files/md5/{b[:2]}/{b[2:]} (corrupt)" in out.output and "--repair" in out.output
    fixed = _verify(cfg, "--repair")
    assert fixed.exit_code == 0, fixed.output
    assert "repaired cache" in fixed.output
    assert cached.read_bytes() == good and md5_file(tracked) == b
    assert _verify(cfg).exit_code == 0


def test_remote_flag_audits_the_named_remote(two_versions, tmp_path):
    cfg, a, b = two_versions
    empty = tmp_path / "empty_remote"
    empty.mkdir()
    for remote in (empty, tmp_path / "no_such_remote"):
        out = CliRunner().invoke(
            cli, ["data", "verify", "--repo", str(cfg.repo_dir), "--remote", str(remote)]
        )
        assert out.exit_code == 1, out.output
        assert f"remote audited: {remote}" in out.output
        for md5 in (a, b):
            assert f"remote:files/md5/{md5[:2]}/{md5[2:]} (missing)" in out.output
        assert out.output.count("missing  remote") == 2
    assert not (tmp_path / "no_such_remote").exists()  # audited, not created
    # without --remote: the repository's configured remote, named as such
    out = CliRunner().invoke(cli, ["data", "verify", "--repo", str(cfg.repo_dir)])
    assert f"remote audited: {Path(cfg.remote_url).resolve()} (the repository's remote)" in (
        out.output
    )
    assert out.exit_code == 0, out.output
