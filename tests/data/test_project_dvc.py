"""The checkout is a DVC project: `.dvc/config` is the one place the default remote is set, and
plain `dvc import` at the project root restores any version recorded in the data registry."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from genline.npzfiles import save_npz
from genline.versioning import DvcConfig, commit_dataset, md5_file, project_remote

REPO_ROOT = Path(__file__).resolve().parents[2]
DVC = str(Path(sys.executable).parent / "dvc")


def _run(cwd: Path, *cmd: str) -> str:
    env = {**os.environ, "COLUMNS": "1000"}  # DVC wraps its tables at the terminal's width
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed in {cwd}:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def _project(tmp_path: Path) -> Path:
    """A project directory holding a copy of the checkout's `.dvc/config`."""
    project = tmp_path / "project"
    (project / ".dvc").mkdir(parents=True)
    shutil.copyfile(REPO_ROOT / ".dvc" / "config", project / ".dvc" / "config")
    return project


def test_the_registry_takes_its_default_remote_from_the_project_config(tmp_path):
    project = _project(tmp_path)
    remote = project_remote(project)
    assert remote is not None and remote.name == "genline"
    # the relative url resolves against .dvc/: <project>/.genline/dvc_remote, the state dir's
    cfg = DvcConfig.default(project / ".genline")
    assert (cfg.remote_name, cfg.remote_url) == (
        "genline",
        str(project / ".genline" / "dvc_remote"),
    )
    # a per-machine override written by plain DVC wins, and is what the registry uses
    elsewhere = tmp_path / "shared_remote"
    _run(project, DVC, "remote", "modify", "--local", "genline", "url", str(elsewhere))
    assert DvcConfig.default(project / ".genline").remote_url == str(elsewhere)
    # an explicit override still wins over the project, and a state dir outside any project
    # keeps the local <state>/dvc_remote
    assert DvcConfig.default(project / ".genline", remote_url="s3://b/p").remote_url == "s3://b/p"
    assert DvcConfig.default(tmp_path / "v").remote_url == str(tmp_path / "v" / "dvc_remote")


@pytest.mark.integration
def test_a_fresh_clone_lists_the_remote_and_imports_a_recorded_version(tmp_path, digits):
    clone = tmp_path / "clone"
    _run(tmp_path, "git", "clone", "-q", "--depth", "1", REPO_ROOT.as_uri(), str(clone))
    listed = _run(clone, DVC, "remote", "list")
    name, url, default = listed.split()
    assert (name, default) == ("genline", "(default)")
    assert url == str(clone / ".genline" / "dvc_remote")

    cfg = DvcConfig.default(tmp_path / "state")  # a registry made here, as a run records it
    first = save_npz(digits.subset(np.arange(300)), tmp_path / "first.npz")
    v1, _ = commit_dataset(cfg, first, {"num_rows": 300}, "first")
    second = save_npz(digits, tmp_path / "second.npz")
    v2, _ = commit_dataset(cfg, second, {"num_rows": len(digits)}, "second")
    assert v1.md5 != v2.md5

    # the documented restore: the registry pinned to the version's commit (docs/data.md)
    (clone / "datasets").mkdir()
    out = "datasets/training_dataset.npz"
    _run(
        clone,
        DVC,
        "import",
        str(cfg.repo_dir),
        "training_dataset.npz",
        "--rev",
        v1.commit,
        "-o",
        out,
    )
    assert md5_file(clone / out) == v1.md5
    assert (clone / out).read_bytes() == first.read_bytes()
    assert f"rev: {v1.commit}" in (clone / f"{out}.dvc").read_text()
