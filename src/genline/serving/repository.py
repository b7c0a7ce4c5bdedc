"""The versioned Triton model repository on disk.

Layout (`<repo>` defaults to `triton_repo/`):

    <repo>/<model>/config.pbtxt          committed (CPU target)
    <repo>/<model>/configs/gpu.pbtxt     committed (GPU target, --model-config-name=gpu)
    <repo>/<model>/<N>/                  a published version: model.py, model.onnx,
                                         evaluator.onnx, serving.json  (never committed)
    <repo>/<model>/quarantine/<N>/       versions that failed, or were rolled back, + reason.json
    <repo>/.staging/                     where a version is assembled before its atomic rename

Version numbers are never reused: the next number is one above every number ever seen in the
version directories, the quarantine and the registry.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

from genline import clock
from genline.fsutil import atomic_write_json

STAGING = ".staging"
QUARANTINE = "quarantine"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class RepositoryError(ValueError):
    """The model repository, a model name or a version is not usable (message says why)."""


def check_model_name(name: str) -> str:
    """Refuse names that could escape the repository (separators, `..`, empty, odd chars)."""
    if not isinstance(name, str) or not name:
        raise RepositoryError("model name is empty")
    if "/" in name or "\\" in name or os.sep in name or ".." in name or not _NAME.match(name):
        raise RepositoryError(
            f"model name {name!r} refused: use letters, digits, '_', '-', '.' only "
            "(no path separators, no '..')"
        )
    return name


def check_version(version: int | str) -> int:
    """A version is a positive integer; strings like '../1' or '1/..' are refused."""
    if isinstance(version, bool):
        raise RepositoryError(f"version {version!r} refused: not an integer")
    if isinstance(version, int):
        number = version
    else:
        text = str(version)
        if not text.isdigit():
            raise RepositoryError(f"version {text!r} refused: must be a positive integer")
        number = int(text)
    if number < 1:
        raise RepositoryError(f"version {version!r} refused: must be >= 1")
    return number


def model_dir(repository: str | Path, model: str) -> Path:
    return Path(repository) / check_model_name(model)


def check_repository(repository: str | Path, model: str) -> Path:
    """The model dir, after checking the repository holds a parseable config for `model`."""
    from genline.serving.config import parse_config

    repo = Path(repository)
    if not repo.is_dir():
        raise RepositoryError(f"model repository {repo} does not exist or is not a directory")
    mdir = model_dir(repo, model)
    cfg_path = mdir / "config.pbtxt"
    if not cfg_path.is_file():
        raise RepositoryError(f"model repository {repo} has no {model}/config.pbtxt")
    try:
        cfg = parse_config(cfg_path)
    except ValueError as exc:
        raise RepositoryError(str(exc)) from exc
    if cfg.name and cfg.name != model:
        raise RepositoryError(f"{cfg_path}: name {cfg.name!r} does not match directory {model!r}")
    return mdir


def versions(repository: str | Path, model: str) -> list[int]:
    """Published (loadable) versions present in the repository, ascending."""
    mdir = model_dir(repository, model)
    if not mdir.is_dir():
        return []
    return sorted(int(p.name) for p in mdir.iterdir() if p.is_dir() and p.name.isdigit())


def quarantined(repository: str | Path, model: str) -> list[int]:
    qdir = model_dir(repository, model) / QUARANTINE
    if not qdir.is_dir():
        return []
    out = []
    for p in qdir.iterdir():
        head = p.name.split("-", 1)[0]
        if p.is_dir() and head.isdigit():
            out.append(int(head))
    return sorted(set(out))


def next_version(repository: str | Path, model: str, seen: set[int] | None = None) -> int:
    used = set(versions(repository, model)) | set(quarantined(repository, model)) | (seen or set())
    return max(used, default=0) + 1


def staging_dir(repository: str | Path) -> Path:
    """A fresh staging directory inside the repository (same filesystem: rename is atomic)."""
    base = Path(repository) / STAGING
    base.mkdir(parents=True, exist_ok=True)
    stamp = clock.now().strftime("%Y%m%dT%H%M%S%f")  # a pinned clock repeats: uuid too
    path = base / f"{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    return path


def staging_leftovers(repository: str | Path) -> list[Path]:
    """Staging directories left by a publish that died (call with the publish lock held)."""
    base = Path(repository) / STAGING
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir())


def quarantine(
    repository: str | Path, model: str, version: int, reason: str, source: Path | None = None
) -> Path:
    """Move version `version` (or a staged `source` dir) into the quarantine, with reason.json.

    Returns:
        Where it now lives. The number stays used forever.
    """
    version = check_version(version)
    qdir = model_dir(repository, model) / QUARANTINE
    qdir.mkdir(parents=True, exist_ok=True)
    src = source if source is not None else model_dir(repository, model) / str(version)
    dest = qdir / str(version)
    if dest.exists():  # quarantined before (e.g. rolled back, then failed again): keep both
        dest = qdir / f"{version}-{clock.now():%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"
    if src.exists():
        os.replace(src, dest)
    else:
        dest.mkdir(parents=True)
    atomic_write_json(
        dest / "reason.json",
        {
            "version": version,
            "reason": reason,
            "time": clock.now().isoformat(),
        },
    )
    return dest


def restore(repository: str | Path, model: str, version: int) -> Path:
    """Move a quarantined (rolled back) version back into the repository."""
    version = check_version(version)
    src = model_dir(repository, model) / QUARANTINE / str(version)
    dest = model_dir(repository, model) / str(version)
    if not src.is_dir():
        raise RepositoryError(f"version {version} is not in the quarantine of {model}")
    if dest.exists():
        raise RepositoryError(f"version {version} of {model} is already in the repository")
    (src / "reason.json").unlink(missing_ok=True)
    os.replace(src, dest)
    return dest


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
