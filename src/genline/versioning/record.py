"""Recording a version: commit a dataset file to the registry and push it, crash-safely."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

from genline.faults import kill_point
from genline.fsutil import atomic_write_json, md5_file
from genline.versioning.config import (
    AUTH_MARKERS,
    INCOMING_NAME,
    INFO_NAME,
    TRACKED_NAME,
    DatasetVersion,
    DvcConfig,
    RemoteAuthError,
    VersioningError,
)
from genline.versioning.history import current_version
from genline.versioning.repo import dvc_errors, dvc_repo, ensure_repo_locked, git, quiet, repo_lock


def commit_dataset(
    cfg: DvcConfig, src: str | Path, info: dict[str, Any] | None = None, message: str = ""
) -> tuple[DatasetVersion, bool]:
    """Record `src` (a canonical dataset file) as the next version and push it to the remote.

    Idempotent: a file with the md5 of the current version records nothing new. Crash-safe: a
    commit killed at any point leaves the previous version current, and the next commit (of any
    content) first clears what the killed one left in the workspace.

    Args:
        cfg: repository and remote.
        src: the file to version (copied into the repository).
        info: JSON-able facts kept beside it (row count, classes, fingerprint, ...).
        message: the version's commit message.

    Returns:
        (the version, True if a new version was recorded).

    Raises:
        VersioningError: the push failed (remote unreachable, read-only, missing credentials),
            the lock timed out, or git/DVC failed; the repository is left at the previous version.
    """
    src = Path(src)
    if not src.is_file():
        raise VersioningError(f"{src}: no such file to version")
    md5 = md5_file(src)
    with repo_lock(cfg):
        ensure_repo_locked(cfg)
        head = current_version(cfg)
        # A writer killed mid-commit (power cut, OOM) leaves the workspace ahead of HEAD; the lock
        # is ours now, so nobody else is writing: put it back before judging or recording.
        _recover_interrupted(cfg, head)
        if head is not None and head.md5 == md5:
            return head, False
        tracked = cfg.repo_dir / TRACKED_NAME
        tmp = tracked.with_name(INCOMING_NAME)
        shutil.copyfile(src, tmp)
        os.replace(tmp, tracked)
        try:
            with quiet(), dvc_repo(cfg) as repo:
                repo.add(str(tracked))
                kill_point("dataset.after_add")
                try:
                    with dvc_errors() as errors:
                        repo.push(remote=cfg.remote_name)
                except Exception as exc:
                    why = f" ({errors[-1]})" if errors else ""
                    kind = (
                        RemoteAuthError
                        if any(m in f"{exc}{why}" for m in AUTH_MARKERS)
                        or isinstance(exc.__cause__, PermissionError)
                        else VersioningError
                    )
                    raise kind(
                        f"dvc push to remote {cfg.remote_name!r} ({cfg.remote_url}) failed: "
                        f"{type(exc).__name__}: {exc}{why}. The dataset version was not "
                        "advanced; check that the remote is reachable and writable",
                        transient=kind is not RemoteAuthError,
                    ) from exc
            # The object is in the remote but no version names it yet: a kill here must leave
            # the previous version current and the rerun record this one exactly once.
            kill_point("dataset.after_push")
            atomic_write_json(cfg.repo_dir / INFO_NAME, {"md5": md5, **(info or {})})
            git(cfg.repo_dir, "add", f"{TRACKED_NAME}.dvc", INFO_NAME, ".gitignore")
            git(cfg.repo_dir, "commit", "-q", "-m", message or f"dataset {md5}")
            kill_point("dataset.after_commit")
        except BaseException:
            _rollback(cfg, head)
            raise
        version = current_version(cfg)
        assert version is not None and version.md5 == md5, "recorded version does not match"
        return version, True


def _recover_interrupted(cfg: DvcConfig, head: DatasetVersion | None) -> None:
    """Undo what a killed commit left behind: staged or modified version files, temp files.

    A commit is only recorded by its git commit, so anything uncommitted is an attempt that never
    finished; objects it pushed stay in the remote and are reused by the retry (DVC skips them).
    Call with the repository lock held.
    """
    repo_dir = cfg.repo_dir
    for litter in [repo_dir / INCOMING_NAME, *repo_dir.glob(f".{INFO_NAME}.*.tmp")]:
        litter.unlink(missing_ok=True)
    names = [f"{TRACKED_NAME}.dvc", INFO_NAME, ".gitignore"]
    dirty = git(repo_dir, "status", "--porcelain", "--", *names, check=False).strip()
    if dirty:
        git(repo_dir, "reset", "-q", "--", *names, check=False)  # unstage a half-done `git add`
        _rollback(cfg, head)


def _rollback(cfg: DvcConfig, head: DatasetVersion | None) -> None:
    """Put the workspace back to HEAD after a failed attempt."""
    repo_dir = cfg.repo_dir
    if head is None:
        for name in (f"{TRACKED_NAME}.dvc", INFO_NAME, TRACKED_NAME):
            (repo_dir / name).unlink(missing_ok=True)
        if git(repo_dir, "ls-files", "--", ".gitignore", check=False).strip():
            git(repo_dir, "checkout", "--", ".gitignore", check=False)
        else:  # written by this attempt's `dvc add`; the next one writes it again
            (repo_dir / ".gitignore").unlink(missing_ok=True)
        return
    git(
        repo_dir,
        "checkout",
        "HEAD",
        "--",
        f"{TRACKED_NAME}.dvc",
        INFO_NAME,
        ".gitignore",
        check=False,
    )
    with contextlib.suppress(Exception), quiet(), dvc_repo(cfg) as repo:
        repo.checkout(targets=[str(repo_dir / TRACKED_NAME)], force=True)


def record_dataset_file(
    cfg: DvcConfig,
    staging: str | Path,
    published_root: str | Path,
    info: dict[str, Any] | None = None,
    message: str = "",
) -> tuple[DatasetVersion, bool, Path]:
    """Record a staged dataset file as a version and publish an immutable copy of it.

    `commit_dataset`, then a copy at `<published_root>/<md5>/training_dataset.npz` (written once
    by rename, left alone when it exists) that downstream steps read. The staged file is removed
    whatever happens.

    Args:
        cfg: repository and remote.
        staging: the canonical file to record (consumed).
        published_root: where immutable copies live, one folder per version md5.
        info: JSON-able facts kept beside the version.
        message: the version's commit message.

    Returns:
        (the version, True if it is new, the published copy's path).

    Raises:
        VersioningError: as `commit_dataset`.
    """
    staging = Path(staging)
    try:
        version, new = commit_dataset(cfg, staging, info, message)
        published = Path(published_root) / version.md5
        path = published / TRACKED_NAME
        if not path.exists():
            published.mkdir(parents=True, exist_ok=True)
            tmp = published / f".{TRACKED_NAME}.{os.getpid()}"
            shutil.copyfile(staging, tmp)
            os.replace(tmp, path)
    finally:
        staging.unlink(missing_ok=True)
    return version, new, path
