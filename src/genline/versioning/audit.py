"""Auditing versions: download every object into an empty cache and re-hash it; repair the cache."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genline.fsutil import md5_file
from genline.versioning.config import (
    AUTH_MARKERS,
    TRACKED_NAME,
    DvcConfig,
    RemoteAuthError,
    VersioningError,
)
from genline.versioning.history import current_version, list_versions, resolve_version
from genline.versioning.repo import dvc_repo, quiet, repo_lock


@dataclass(frozen=True)
class ObjectAudit:
    """The verdict on one dataset object, in the remote or in the local cache.

    Attributes:
        version: the version's md5 (the object's expected md5).
        where: "remote" or "cache".
        name: the object's path in the remote or cache (`files/md5/ab/cdef...`).
        status: "ok", "missing", "corrupt" (bytes hash to `actual`), or "repaired".
        actual: the md5 the bytes actually have (corrupt/repaired), else "".
        remote: the URL of the remote audited (where == "remote"), else "".
    """

    version: str
    where: str
    name: str
    status: str
    actual: str = ""
    remote: str = ""

    @property
    def bad(self) -> bool:
        return self.status in ("missing", "corrupt")


def _object_name(md5: str) -> str:
    return f"files/md5/{md5[:2]}/{md5[2:]}"


def _remote_error(cfg: DvcConfig, exc: BaseException) -> VersioningError:
    """A remote failure as a VersioningError that says whether it was our credentials."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, PermissionError) or any(m in text for m in AUTH_MARKERS):
        return RemoteAuthError(
            f"authentication to DVC remote {cfg.remote_name!r} ({cfg.remote_url}) failed: {text}. "
            "Check the access key id and secret (GENLINE_DVC_ACCESS_KEY_ID / "
            "GENLINE_DVC_SECRET_ACCESS_KEY, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
        )
    return VersioningError(
        f"DVC remote {cfg.remote_name!r} ({cfg.remote_url}) could not be read: {text}"
    )


def _audit_remote(cfg: DvcConfig, odb: Any, md5: str, scratch: Path, url: str) -> ObjectAudit:
    """Download the object into `scratch` (an empty cache of our own) and re-hash the bytes."""
    name = _object_name(md5)
    path = odb.oid_to_path(md5)
    h = hashlib.md5()
    try:
        if not odb.fs.exists(path):
            return ObjectAudit(md5, "remote", name, "missing", remote=url)
        target = scratch / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with odb.fs.open(path, "rb") as src, open(target, "wb") as dst:
            while block := src.read(1 << 20):
                h.update(block)
                dst.write(block)
    except FileNotFoundError:
        return ObjectAudit(md5, "remote", name, "missing", remote=url)
    except Exception as exc:  # network, credentials: not a verdict on the object
        raise _remote_error(cfg, exc) from exc
    actual = h.hexdigest()
    status = "ok" if actual == md5 else "corrupt"
    return ObjectAudit(md5, "remote", name, status, actual, remote=url)


# The name an audited remote given by URL gets in DVC's in-memory config: a fresh entry, so that
# none of the configured remote's keys (endpointurl, ...) carry over to another remote.
_AUDIT_REMOTE = "genline-audit"


@contextlib.contextmanager
def _audited_remote(cfg: DvcConfig, remote_url: str | None) -> Iterator[tuple[Any, str]]:
    """(DVC object database, URL) of the remote to audit: `remote_url` when given, else the
    remote the repository's config names `cfg.remote_name`.

    The URL is handed to DVC in memory (`remote_config`); the repository's config is unchanged.
    """
    from dvc.repo import Repo

    if remote_url:
        url = remote_url if "://" in remote_url else str(Path(remote_url).resolve())
        override: dict[str, Any] = {"url": url, **(cfg.remote_config or {})}
        if cfg.endpoint_url:
            override["endpointurl"] = cfg.endpoint_url
        repo = Repo(str(cfg.repo_dir), remote=_AUDIT_REMOTE, remote_config=override)
        name = _AUDIT_REMOTE
    else:
        repo = Repo(str(cfg.repo_dir), remote=cfg.remote_name, remote_config=cfg.remote_config)
        name = cfg.remote_name
        url = str(repo.config["remote"].get(name, {}).get("url", cfg.remote_url))
    try:
        yield repo.cloud.get_remote_odb(name), url
    finally:
        repo.close()


def _audit_cache(cfg: DvcConfig, md5: str, scratch: Path, repair: bool) -> ObjectAudit | None:
    """Re-hash the local cache's copy; with `repair`, replace a corrupt one by the verified
    download in `scratch`. None when the cache does not hold the object (nothing to judge)."""
    name = _object_name(md5)
    cached = cfg.repo_dir / ".dvc" / "cache" / name
    if not cached.is_file():
        return None
    actual = md5_file(cached)
    if actual == md5:
        return ObjectAudit(md5, "cache", name, "ok")
    good = scratch / name
    if not repair or not good.is_file() or md5_file(good) != md5:
        return ObjectAudit(md5, "cache", name, "corrupt", actual)
    # DVC makes cache files read-only; replace by rename so a reader never sees half a file
    tmp = cached.with_name(f".{cached.name}.repair")
    shutil.copyfile(good, tmp)
    os.chmod(tmp, 0o444)
    os.replace(tmp, cached)
    return ObjectAudit(md5, "cache", name, "repaired", actual)


def verify_versions(
    cfg: DvcConfig,
    version: str | None = None,
    repair: bool = False,
    remote_url: str | None = None,
) -> list[ObjectAudit]:
    """Audit recorded versions: download each from the remote into an empty cache and re-hash it
    against the recorded md5, then re-hash the local cache's copy.

    `verify_in_remote` only asks whether the object exists; this reads every byte, so a
    truncated or bit-flipped object is caught as well as a deleted one.

    Args:
        cfg: repository and remote.
        version: one version (md5, prefix, commit, "latest"); None: every recorded version.
        repair: replace a corrupt local cache object with the verified remote copy, and restore
            the workspace file when it is the repaired version.
        remote_url: audit this remote (a directory or URL) instead of the one the repository's
            config names; the repository's config is not changed.

    Returns:
        One ObjectAudit per object and place, remote first (each naming the remote's URL);
        `bad` ones are missing or corrupt.

    Raises:
        VersioningError: unknown version or no versions; RemoteAuthError: the remote refused the
            credentials; VersioningError: the remote could not be reached.
    """
    import tempfile

    versions = [resolve_version(cfg, version)] if version else list_versions(cfg)
    if not versions:
        raise VersioningError(f"{cfg.repo_dir}: no dataset versions recorded yet")
    md5s = list(dict.fromkeys(v.md5 for v in versions))
    audits: list[ObjectAudit] = []
    with repo_lock(cfg), tempfile.TemporaryDirectory(prefix="genline-verify-") as tmp:
        scratch = Path(tmp)
        try:
            with quiet(), _audited_remote(cfg, remote_url) as (odb, url):
                remote = [_audit_remote(cfg, odb, m, scratch, url) for m in md5s]
        except VersioningError:
            raise
        except Exception as exc:  # the remote's filesystem could not even be set up
            raise _remote_error(cfg, exc) from exc
        audits.extend(remote)
        for m in md5s:
            cached = _audit_cache(cfg, m, scratch, repair)
            if cached is not None:
                audits.append(cached)
        head = current_version(cfg)
        tracked = cfg.repo_dir / TRACKED_NAME
        if repair and head is not None and head.md5 in md5s:
            if tracked.exists() and md5_file(tracked) != head.md5:
                # the workspace is a link/copy of a repaired object, or damaged itself
                tracked.unlink()
            if not tracked.exists():
                with quiet(), dvc_repo(cfg) as repo:
                    repo.checkout(targets=[str(tracked)], force=True)
    return audits
