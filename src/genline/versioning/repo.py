"""The registry's plumbing: git and DVC calls, the writers' lock, creating the repository."""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from genline.versioning.config import DvcConfig, VersioningError

GIT_ID = [
    "-c",
    "user.name=genline",
    "-c",
    "user.email=genline@localhost",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "init.defaultBranch=main",
]


def git(repo: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *GIT_ID, "-C", str(repo), *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise VersioningError(f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip()}")
    return proc.stdout


@contextlib.contextmanager
def repo_lock(cfg: DvcConfig) -> Iterator[None]:
    """Exclusive lock across processes and threads; waits up to `cfg.lock_timeout_s`."""
    cfg.lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(cfg.lock_path, "a+") as fh:
        deadline = time.monotonic() + cfg.lock_timeout_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise VersioningError(
                        f"{cfg.repo_dir}: another materialization has held the dataset lock "
                        f"{cfg.lock_path} for over {cfg.lock_timeout_s:g} s; retry when it "
                        "finishes",
                        transient=True,
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def dvc_repo(cfg: DvcConfig) -> Iterator[Any]:
    from dvc.repo import Repo

    repo = Repo(str(cfg.repo_dir), remote=cfg.remote_name, remote_config=cfg.remote_config)
    repo.scm_context.quiet = True  # no "To track the changes with git, run: ..." hints
    try:
        yield repo
    finally:
        repo.close()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Keep DVC's hints ("Initialized DVC repository", "To track the changes with git, run")
    out of stdout: they are INFO records of the `dvc` logger and plain prints."""
    import io
    import logging

    logger = logging.getLogger("dvc")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def dvc_errors() -> Iterator[list[str]]:
    """Collect DVC's logged errors (the reason behind "1 files failed to upload")."""
    import logging

    errors: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            cause = f": {record.exc_info[1]}" if record.exc_info and record.exc_info[1] else ""
            errors.append((record.getMessage() + cause)[:300])

    handler = _Collect(level=logging.ERROR)
    loggers = [logging.getLogger(name) for name in ("dvc", "dvc_data", "dvc_objects")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield errors
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def _configure_remote(cfg: DvcConfig) -> None:
    with dvc_repo(cfg) as repo, repo.config.edit() as conf:
        remote: dict[str, Any] = {"url": cfg.remote_url}
        if cfg.endpoint_url:
            remote["endpointurl"] = cfg.endpoint_url
        conf["remote"][cfg.remote_name] = remote
        conf["core"]["remote"] = cfg.remote_name
        conf["core"]["autostage"] = False
        conf["core"]["analytics"] = False


def ensure_repo(cfg: DvcConfig) -> None:
    """Create the repository (git init, dvc init, remote) or bring its remote config up to date."""
    with repo_lock(cfg):
        ensure_repo_locked(cfg)


def ensure_repo_locked(cfg: DvcConfig) -> None:
    repo_dir = cfg.repo_dir
    if not cfg.remote_url:
        raise VersioningError("no DVC remote configured (remote_url is empty)")
    repo_dir.mkdir(parents=True, exist_ok=True)
    if not (repo_dir / ".git").exists():
        git(repo_dir, "init", "-q")
    if not (repo_dir / ".dvc").exists():
        from dvc.repo import Repo

        with quiet():
            Repo.init(str(repo_dir)).close()
        # DVC's per-repo state/index would otherwise land in /var/tmp/dvc; keep it in the repo
        # (config.local is git-ignored, so clones choose their own).
        with dvc_repo(cfg) as repo, repo.config.edit("local") as conf:
            conf["core"]["site_cache_dir"] = str(repo_dir / ".dvc" / "tmp" / "site_cache")
    _configure_remote(cfg)
    git(repo_dir, "add", ".dvc/config", ".dvcignore")
    if git(repo_dir, "status", "--porcelain", "--", ".dvc/config", ".dvcignore").strip():
        git(
            repo_dir,
            "commit",
            "-q",
            "-m",
            f"genline: DVC remote {cfg.remote_name} -> {cfg.remote_url}",
            "--",
            ".dvc/config",
            ".dvcignore",
        )
