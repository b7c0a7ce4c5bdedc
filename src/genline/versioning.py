"""Dataset versions with DVC: a small git + DVC repository under the state directory.

Layout (defaults; `DvcConfig` changes them):

    <state>/data_repo/              git + DVC repository, one commit per dataset version
        training_dataset.npz        the canonical dataset (DVC-tracked, git-ignored)
        training_dataset.npz.dvc    its md5 (git-tracked): the version id
        training_dataset.json       row count, classes, counts, fingerprint, reference stats
    <state>/dvc_remote/             the default remote: a local directory
    <state>/data_repo.lock          serialises writers (two materializations never interleave)

A version is recorded only after `dvc push` succeeded: if the remote is unreachable or
read-only, the repository is rolled back and nothing advances. Any recorded version can be
restored bit for bit with `checkout`, also from a fresh `git clone` + `dvc pull`.

An S3-compatible remote is configured with `remote_url="s3://bucket/prefix"` and
`endpoint_url=...`; credentials are never written into the repository: DVC reads them from
the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) at push and pull time.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genline.faults import kill_point
from genline.fsutil import atomic_write_json
from genline.paths import state_dir

TRACKED_NAME = "training_dataset.npz"
INFO_NAME = "training_dataset.json"
INCOMING_NAME = f".{TRACKED_NAME}.incoming"  # the copy in flight before it replaces TRACKED_NAME
_GIT_ID = [
    "-c",
    "user.name=genline",
    "-c",
    "user.email=genline@localhost",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "init.defaultBranch=main",
]


class VersioningError(RuntimeError):
    """A dataset version could not be recorded or restored; the message says what to fix.

    `transient` is True when trying again later may succeed (the remote or the lock was
    unavailable), False for problems a retry cannot fix.
    """

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class DvcConfig:
    """Where versions live.

    Attributes:
        repo_dir: the git + DVC repository (created on first use).
        remote_url: a directory path, or an `s3://bucket/prefix` URL (needs `dvc[s3]`).
        remote_name: the DVC remote's name in the repository config.
        endpoint_url: the S3-compatible endpoint (MinIO, Ceph, ...); empty for AWS or local.
        lock_timeout_s: how long a writer waits for another to finish before failing.
        access_key_id, secret_access_key: S3 credentials, handed to DVC in memory only (never
            written to the repository); empty = DVC's usual lookup (AWS_* variables, profiles).
    """

    repo_dir: Path
    remote_url: str
    remote_name: str = "genline"
    endpoint_url: str = ""
    lock_timeout_s: float = 300.0
    access_key_id: str = field(default="", repr=False)
    secret_access_key: str = field(default="", repr=False)

    @property
    def remote_config(self) -> dict[str, str] | None:
        creds = {"access_key_id": self.access_key_id, "secret_access_key": self.secret_access_key}
        creds = {k: v for k, v in creds.items() if v}
        return creds or None

    @classmethod
    def default(cls, root: str | Path | None = None, **overrides: Any) -> DvcConfig:
        """Repository and local remote under the state directory (or `root`)."""
        base = Path(root) if root is not None else state_dir()
        kw: dict[str, Any] = {
            "repo_dir": base / "data_repo",
            "remote_url": str(base / "dvc_remote"),
        }
        kw.update({k: v for k, v in overrides.items() if v not in (None, "")})
        kw["repo_dir"] = Path(kw["repo_dir"])
        return cls(**kw)

    @property
    def lock_path(self) -> Path:
        return self.repo_dir.parent / f"{self.repo_dir.name}.lock"


@dataclass(frozen=True)
class DatasetVersion:
    """One recorded version: `md5` is the DVC md5 of the canonical file (the version id)."""

    md5: str
    size: int
    commit: str
    created: str
    message: str
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- helpers ------------------------------------------------------------------------------------


def _git(repo: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *_GIT_ID, "-C", str(repo), *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise VersioningError(f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip()}")
    return proc.stdout


def md5_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


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
def _dvc_repo(cfg: DvcConfig) -> Iterator[Any]:
    from dvc.repo import Repo

    repo = Repo(str(cfg.repo_dir), remote=cfg.remote_name, remote_config=cfg.remote_config)
    repo.scm_context.quiet = True  # no "To track the changes with git, run: ..." hints
    try:
        yield repo
    finally:
        repo.close()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
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
def _dvc_errors() -> Iterator[list[str]]:
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
    with _dvc_repo(cfg) as repo, repo.config.edit() as conf:
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
        _ensure_repo_locked(cfg)


def _ensure_repo_locked(cfg: DvcConfig) -> None:
    repo_dir = cfg.repo_dir
    if not cfg.remote_url:
        raise VersioningError("no DVC remote configured (remote_url is empty)")
    repo_dir.mkdir(parents=True, exist_ok=True)
    if not (repo_dir / ".git").exists():
        _git(repo_dir, "init", "-q")
    if not (repo_dir / ".dvc").exists():
        from dvc.repo import Repo

        with _quiet():
            Repo.init(str(repo_dir)).close()
        # DVC's per-repo state/index would otherwise land in /var/tmp/dvc; keep it in the repo
        # (config.local is git-ignored, so clones choose their own).
        with _dvc_repo(cfg) as repo, repo.config.edit("local") as conf:
            conf["core"]["site_cache_dir"] = str(repo_dir / ".dvc" / "tmp" / "site_cache")
    _configure_remote(cfg)
    _git(repo_dir, "add", ".dvc/config", ".dvcignore")
    if _git(repo_dir, "status", "--porcelain", "--", ".dvc/config", ".dvcignore").strip():
        _git(
            repo_dir,
            "commit",
            "-q",
            "-m",
            f"genline: DVC remote {cfg.remote_name} -> {cfg.remote_url}",
            "--",
            ".dvc/config",
            ".dvcignore",
        )


# --- recording a version ------------------------------------------------------------------------


def current_version(cfg: DvcConfig) -> DatasetVersion | None:
    """The version at HEAD of the data repository, or None before the first one."""
    if not (cfg.repo_dir / ".git").exists():
        return None
    versions = list_versions(cfg, limit=1)
    return versions[0] if versions else None


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
        _ensure_repo_locked(cfg)
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
            with _quiet(), _dvc_repo(cfg) as repo:
                repo.add(str(tracked))
                kill_point("dataset.after_add")
                try:
                    with _dvc_errors() as errors:
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
            _git(cfg.repo_dir, "add", f"{TRACKED_NAME}.dvc", INFO_NAME, ".gitignore")
            _git(cfg.repo_dir, "commit", "-q", "-m", message or f"dataset {md5}")
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
    dirty = _git(repo_dir, "status", "--porcelain", "--", *names, check=False).strip()
    if dirty:
        _git(repo_dir, "reset", "-q", "--", *names, check=False)  # unstage a half-done `git add`
        _rollback(cfg, head)


def _rollback(cfg: DvcConfig, head: DatasetVersion | None) -> None:
    """Put the workspace back to HEAD after a failed attempt."""
    repo_dir = cfg.repo_dir
    if head is None:
        for name in (f"{TRACKED_NAME}.dvc", INFO_NAME, TRACKED_NAME):
            (repo_dir / name).unlink(missing_ok=True)
        if _git(repo_dir, "ls-files", "--", ".gitignore", check=False).strip():
            _git(repo_dir, "checkout", "--", ".gitignore", check=False)
        else:  # written by this attempt's `dvc add`; the next one writes it again
            (repo_dir / ".gitignore").unlink(missing_ok=True)
        return
    _git(
        repo_dir,
        "checkout",
        "HEAD",
        "--",
        f"{TRACKED_NAME}.dvc",
        INFO_NAME,
        ".gitignore",
        check=False,
    )
    with contextlib.suppress(Exception), _quiet(), _dvc_repo(cfg) as repo:
        repo.checkout(targets=[str(repo_dir / TRACKED_NAME)], force=True)


# --- reading versions -------------------------------------------------------------------------


def list_versions(cfg: DvcConfig, limit: int | None = None) -> list[DatasetVersion]:
    """Recorded versions, newest first."""
    if not (cfg.repo_dir / ".git").exists():
        return []
    args = ["log", "--format=%H%x09%cI%x09%s"]
    if limit:
        args.append(f"-n{limit}")
    out = _git(cfg.repo_dir, *args, "--", f"{TRACKED_NAME}.dvc", check=False)
    versions = []
    for line in out.splitlines():
        commit, created, message = line.split("\t", 2)
        dvc_text = _git(cfg.repo_dir, "show", f"{commit}:{TRACKED_NAME}.dvc", check=False)
        if not dvc_text:
            continue
        md5, size = _parse_dvc_file(dvc_text)
        info_text = _git(cfg.repo_dir, "show", f"{commit}:{INFO_NAME}", check=False)
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
            _quiet(),
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
    with _quiet(), _dvc_repo(cfg) as repo:
        from dvc_data.hashfile.hash_info import HashInfo

        odb = repo.cloud.get_remote_odb(cfg.remote_name)
        return bool(odb.exists(HashInfo("md5", v.md5).value))


# --- auditing --------------------------------------------------------------------------------

AUTH_MARKERS = (
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "InvalidClientTokenId",
    "ExpiredToken",
    "Forbidden",
    "(403)",  # botocore: "An error occurred (403) when calling ..."; bare 403 matches md5s
)


class RemoteAuthError(VersioningError):
    """The remote refused our credentials (not a missing or damaged object)."""


@dataclass(frozen=True)
class ObjectAudit:
    """The verdict on one dataset object, in the remote or in the local cache.

    Attributes:
        version: the version's md5 (the object's expected md5).
        where: "remote" or "cache".
        name: the object's path in the remote or cache (`files/md5/ab/cdef...`).
        status: "ok", "missing", "corrupt" (bytes hash to `actual`), or "repaired".
        actual: the md5 the bytes actually have (corrupt/repaired), else "".
    """

    version: str
    where: str
    name: str
    status: str
    actual: str = ""

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


def _audit_remote(cfg: DvcConfig, odb: Any, md5: str, scratch: Path) -> ObjectAudit:
    """Download the object into `scratch` (an empty cache of our own) and re-hash the bytes."""
    name = _object_name(md5)
    path = odb.oid_to_path(md5)
    h = hashlib.md5()
    try:
        if not odb.fs.exists(path):
            return ObjectAudit(md5, "remote", name, "missing")
        target = scratch / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with odb.fs.open(path, "rb") as src, open(target, "wb") as dst:
            while block := src.read(1 << 20):
                h.update(block)
                dst.write(block)
    except FileNotFoundError:
        return ObjectAudit(md5, "remote", name, "missing")
    except Exception as exc:  # network, credentials: not a verdict on the object
        raise _remote_error(cfg, exc) from exc
    actual = h.hexdigest()
    return ObjectAudit(md5, "remote", name, "ok" if actual == md5 else "corrupt", actual)


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
    cfg: DvcConfig, version: str | None = None, repair: bool = False
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

    Returns:
        One ObjectAudit per object and place, remote first; `bad` ones are missing or corrupt.

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
            with _quiet(), _dvc_repo(cfg) as repo:
                odb = repo.cloud.get_remote_odb(cfg.remote_name)
                remote = [_audit_remote(cfg, odb, m, scratch) for m in md5s]
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
                with _quiet(), _dvc_repo(cfg) as repo:
                    repo.checkout(targets=[str(tracked)], force=True)
    return audits


def info_json(version: DatasetVersion) -> str:
    return json.dumps(version.to_dict(), indent=2, sort_keys=True, default=str)
