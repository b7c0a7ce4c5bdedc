"""What the data registry is: its file names, where it lives, its errors and its versions."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genline.paths import state_dir
from genline.versioning.remote import default_remote

TRACKED_NAME = "training_dataset.npz"
INFO_NAME = "training_dataset.json"
INCOMING_NAME = f".{TRACKED_NAME}.incoming"  # the copy in flight before it replaces TRACKED_NAME


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
        """The repository under the state directory (or `root`) and the default remote.

        The remote is the one the project's `.dvc/config` names when the state directory lives
        in the project (see `genline.versioning.remote`), else the local `<root>/dvc_remote`.
        Overrides that are None or "" are ignored.
        """
        base = Path(root) if root is not None else state_dir()
        remote = default_remote(base)
        kw: dict[str, Any] = {
            "repo_dir": base / "data_repo",
            "remote_url": remote.url,
            "remote_name": remote.name,
            "endpoint_url": remote.endpoint_url,
        }
        given = {k: v for k, v in overrides.items() if v not in (None, "")}
        if "remote_url" in given:  # another remote: the project's endpoint is not its endpoint
            kw["endpoint_url"] = ""
        kw.update(given)
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
