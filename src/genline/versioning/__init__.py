"""Dataset versions with DVC: a small git + DVC repository under the state directory.

Layout (defaults; `DvcConfig` changes them):

    <state>/data_repo/              git + DVC repository, one commit per dataset version
        training_dataset.npz        the canonical dataset (DVC-tracked, git-ignored)
        training_dataset.npz.dvc    its md5 (git-tracked): the version id
        training_dataset.json       row count, classes, counts, fingerprint, reference stats
    <state>/dvc_remote/             the default remote: a local directory (the project's
                                    `.dvc/config` names it; see `genline.versioning.remote`)
    <state>/data_repo.lock          serialises writers (two materializations never interleave)

A version is recorded only after `dvc push` succeeded: if the remote is unreachable or
read-only, the repository is rolled back and nothing advances. Any recorded version can be
restored bit for bit with `checkout`, also from a fresh `git clone` + `dvc pull`.

An S3-compatible remote is configured with `remote_url="s3://bucket/prefix"` and
`endpoint_url=...`; credentials are never written into the repository: DVC reads them from
the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) at push and pull time.
"""

from genline.fsutil import md5_file
from genline.versioning.audit import ObjectAudit, verify_versions
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
from genline.versioning.history import (
    checkout,
    current_version,
    info_json,
    list_versions,
    resolve_version,
    verify_in_remote,
)
from genline.versioning.record import commit_dataset, record_dataset_file
from genline.versioning.remote import ProjectRemote, default_remote, project_remote
from genline.versioning.repo import ensure_repo, repo_lock

__all__ = [
    "AUTH_MARKERS",
    "INCOMING_NAME",
    "INFO_NAME",
    "TRACKED_NAME",
    "DatasetVersion",
    "DvcConfig",
    "ObjectAudit",
    "ProjectRemote",
    "RemoteAuthError",
    "VersioningError",
    "checkout",
    "commit_dataset",
    "current_version",
    "default_remote",
    "ensure_repo",
    "info_json",
    "list_versions",
    "md5_file",
    "project_remote",
    "record_dataset_file",
    "repo_lock",
    "resolve_version",
    "verify_in_remote",
    "verify_versions",
]
