"""A dataset commit killed (SIGKILL) at any point leaves a consistent repository, and the rerun
records the content exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from genline.faults import ENV as KILL_ENV
from genline.npzfiles import save_npz
from genline.versioning import DvcConfig, list_versions, md5_file

COMMIT = """
import sys
from pathlib import Path
from genline.versioning import DvcConfig, commit_dataset
cfg = DvcConfig.default(Path(sys.argv[1]))
version, new = commit_dataset(cfg, sys.argv[2], {"rows": int(sys.argv[3])}, message="v")
print(version.md5, new)
"""


def _commit(root: Path, src: Path, rows: int, kill_at: str | None = None):
    env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
    if kill_at:
        env[KILL_ENV] = kill_at
    return subprocess.run(
        [sys.executable, "-c", COMMIT, str(root), str(src), str(rows)],
        env=env, capture_output=True, text=True, timeout=300,
    )


def _assert_consistent(cfg: DvcConfig) -> None:
    status = subprocess.run(
        ["git", "-C", str(cfg.repo_dir), "status", "--porcelain", "--ignored"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    # only DVC's own ignored state and the tracked (git-ignored) dataset itself may be there
    assert sorted(ln for ln in status if not ln.startswith("!! .dvc/")) == [
        "!! training_dataset.npz"
    ], status
    from dvc.repo import Repo

    with Repo(str(cfg.repo_dir)) as repo:
        assert repo.status() == {}  # workspace matches the recorded .dvc file
        assert repo.status(cloud=True, remote=cfg.remote_name) == {}  # and the remote has it
    litter = [p.name for p in cfg.repo_dir.iterdir() if p.name.startswith(".training_dataset")]
    assert litter == []


@pytest.mark.parametrize(
    "point", ["dataset.after_add", "dataset.after_push", "dataset.after_commit"]
)
def test_killed_commit_then_rerun_records_one_version(tmp_path, digits, point):
    root = tmp_path / "v"
    cfg = DvcConfig.default(root)
    first = save_npz(digits.subset(np.arange(200)), tmp_path / "first.npz")
    assert _commit(root, first, 200).returncode == 0
    second = save_npz(digits.subset(np.arange(300)), tmp_path / "second.npz")

    killed = _commit(root, second, 300, kill_at=point)
    assert killed.returncode == -9, killed.stderr[-2000:]
    committed = point == "dataset.after_commit"  # killed after the version was recorded
    assert [v.md5 for v in list_versions(cfg)][0] == md5_file(second if committed else first)

    rerun = _commit(root, second, 300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert rerun.stdout.split() == [md5_file(second), str(not committed)]
    assert [v.md5 for v in list_versions(cfg)] == [md5_file(second), md5_file(first)]
    assert list_versions(cfg)[0].info["rows"] == 300
    _assert_consistent(cfg)
    again = _commit(root, second, 300)  # idempotent: the same content records nothing new
    assert again.stdout.split() == [md5_file(second), "False"]
    assert len(list_versions(cfg)) == 2


def test_killed_commit_then_commit_of_the_current_content_cleans_up(tmp_path, digits):
    """The next commit is of HEAD's content (nothing new to record): it must still undo the
    killed attempt's workspace, or the data repo would sit on an unrecorded file."""
    root = tmp_path / "v"
    cfg = DvcConfig.default(root)
    first = save_npz(digits.subset(np.arange(200)), tmp_path / "first.npz")
    assert _commit(root, first, 200).returncode == 0
    second = save_npz(digits.subset(np.arange(300)), tmp_path / "second.npz")
    assert _commit(root, second, 300, kill_at="dataset.after_push").returncode == -9
    rerun = _commit(root, first, 200)
    assert rerun.stdout.split() == [md5_file(first), "False"], rerun.stderr[-2000:]
    assert [v.md5 for v in list_versions(cfg)] == [md5_file(first)]
    assert md5_file(cfg.repo_dir / "training_dataset.npz") == md5_file(first)
    _assert_consistent(cfg)
