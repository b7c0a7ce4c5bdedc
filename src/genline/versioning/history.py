"""Reading the registry: the recorded versions, and restoring one byte for byte."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from genline.fsutil import md5_file
from genline.versioning.config import (
    INFO_NAME,
    TRACKED_NAME,
    DatasetVersion,
    DvcConfig,
    VersioningError,
)
from genline.versioning.repo import dvc_repo, git, quiet


def current_version(cfg: DvcConfig) -> DatasetVersion | None:
    """The version at HEAD of the data repository, or None before the first one."""
    if not (cfg.repo_dir / ".git").exists():
        return None
    versions = list_versions(cfg, limit=1)
    return versions[0] if versions else None


def list_versions(cfg: DvcConfig, limit: int | None = None) -> list[DatasetVersion]:
    """Recorded versions, newest first."""
    if not (cfg.repo_dir / ".git").exists():
        return []
    args = ["log", "--format=%H%x09%cI%x09%s"]
    if limit:
        args.append(f"-n{limit}")
    out = git(cfg.repo_dir, *args, "--", f"{TRACKED_NAME}.dvc", check=False)
    versions = []
    for line in out.splitlines():
        commit, created, message = line.split("\t", 2)
        dvc_text = git(cfg.repo_dir, "show", f"{commit}:{TRACKED_NAME}.dvc", check=False)
        if not dvc_text:
            continue
        md5, size = _parse_dvc_file(dvc_text)
        info_text = git(cfg.repo_dir, "show", f"{commit}:{INFO_NAME}", check=False)
        info = json.loads(info_text) if info_text.strip() else {}
        versions.append(DatasetVersion(md5, size, commit, created, message, info))
    return versions


def _parse_dvc_file(text: str) -> tuple[str, int]:
    md5, size = "", 0
    for line in text.splitlines():
        line = line.strip().lstrip("- ").strip()
        if line.startswith("md5:"):
            md5 = line.split(":", 1)[1].strip()
        elif line.startswith("size:"):
            size = int(line.split(":", 1)[1])
    if not md5:
        raise VersioningError(f"no md5 in .dvc file:\n{text}")
    return md5, size


def resolve_version(cfg: DvcConfig, version: str) -> DatasetVersion:
    """A version by md5 (or a unique prefix of at least 6), git commit prefix, or "latest".

    Raises:
        VersioningError: unknown or ambiguous version (the message lists what exists).
    """
    versions = list_versions(cfg)
    if not versions:
        raise VersioningError(f"{cfg.repo_dir}: no dataset versions recorded yet")
    if version in ("latest", "HEAD"):
        return versions[0]
    v = version.strip().lower()
    if len(v) < 6:
        raise VersioningError(f"version {version!r} is too short: give at least 6 hex digits")
    hits = {x.md5: x for x in versions if x.md5.startswith(v) or x.commit.startswith(v)}
    if len(hits) == 1:
        return next(iter(hits.values()))
    known = ", ".join(x.md5[:12] for x in versions[:10])
    if not hits:
        raise VersioningError(f"no dataset version {version!r}; recorded: {known}")
    raise VersioningError(f"version {version!r} is ambiguous: matches {sorted(hits)}")


def checkout(cfg: DvcConfig, version: str, out: str | Path) -> tuple[DatasetVersion, Path]:
    """Restore a recorded version to `out`, byte for byte (fetched from the remote if needed).

    Raises:
        VersioningError: unknown version, remote unreachable, or bytes that do not match the md5.
    """
    v = resolve_version(cfg, version)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.checkout")
    try:
        import dvc.api

        with (
            quiet(),
            dvc.api.open(
                TRACKED_NAME,
                repo=str(cfg.repo_dir),
                rev=v.commit,
                remote=cfg.remote_name,
                remote_config=cfg.remote_config,
                mode="rb",
            ) as src,
            open(tmp, "wb") as dst,
        ):
            shutil.copyfileobj(src, dst, 1 << 20)
        got = md5_file(tmp)
        if got != v.md5:
            raise VersioningError(f"restored bytes have md5 {got}, expected {v.md5}")
        os.replace(tmp, out)
    except VersioningError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise VersioningError(
            f"could not restore dataset version {v.md5} (commit "
            f"{v.commit[:10]}) from remote {cfg.remote_url}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return v, out


def verify_in_remote(cfg: DvcConfig, version: str = "latest") -> bool:
    """True when the remote holds the version's object (`dvc status --cloud` sees it)."""
    v = resolve_version(cfg, version)
    with quiet(), dvc_repo(cfg) as repo:
        from dvc_data.hashfile.hash_info import HashInfo

        odb = repo.cloud.get_remote_odb(cfg.remote_name)
        return bool(odb.exists(HashInfo("md5", v.md5).value))


def info_json(version: DatasetVersion) -> str:
    return json.dumps(version.to_dict(), indent=2, sort_keys=True, default=str)
