"""Versions pushed to an S3-compatible remote; credentials never land in the repository."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from genline.npzfiles import save_npz
from genline.versioning import (
    DvcConfig,
    VersioningError,
    checkout,
    commit_dataset,
    current_version,
    verify_in_remote,
)
from tests.data.s3 import ACCESS_KEY, SECRET_KEY, s3_endpoint  # noqa: F401  (a fixture)

pytestmark = pytest.mark.integration


def test_push_and_restore_through_s3(tmp_path, digits, s3_endpoint, monkeypatch):  # noqa: F811
    endpoint, client = s3_endpoint
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    cfg = DvcConfig.default(
        tmp_path,
        remote_url="s3://genline/datasets",
        endpoint_url=endpoint,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
    )
    src = save_npz(digits.subset(np.arange(300)), tmp_path / "a.npz")
    version, new = commit_dataset(cfg, src)
    assert new and verify_in_remote(cfg, version.md5)
    key = f"datasets/files/md5/{version.md5[:2]}/{version.md5[2:]}"
    assert client.get_object(Bucket="genline", Key=key)["Body"].read() == src.read_bytes()
    for config in (cfg.repo_dir / ".dvc").glob("config*"):
        text = config.read_text()
        assert SECRET_KEY not in text and ACCESS_KEY not in text
    assert "endpointurl" in (cfg.repo_dir / ".dvc" / "config").read_text()
    shutil.rmtree(cfg.repo_dir / ".dvc" / "cache")
    _, out = checkout(cfg, version.md5, tmp_path / "restored.npz")
    assert out.read_bytes() == src.read_bytes()


def test_missing_bucket_fails_cleanly(tmp_path, digits, s3_endpoint):  # noqa: F811
    endpoint, _ = s3_endpoint
    cfg = DvcConfig.default(
        tmp_path,
        remote_url="s3://no-such-bucket/x",
        endpoint_url=endpoint,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
    )
    with pytest.raises(VersioningError, match="not advanced"):
        commit_dataset(cfg, save_npz(digits.subset(np.arange(300)), tmp_path / "a.npz"))
    assert current_version(cfg) is None


def test_wrong_credentials_are_reported_as_an_authentication_error(
    tmp_path, digits, s3_endpoint, monkeypatch  # noqa: F811
):
    """moto enforces IAM once INITIAL_NO_AUTH_ACTION_COUNT is reached: a real user's key works,
    a wrong secret is refused, and verify says it was the credentials, not the data."""
    import boto3
    from moto import settings

    from genline.versioning import RemoteAuthError, verify_versions

    endpoint, _ = s3_endpoint
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    iam.create_user(UserName="genline")
    iam.put_user_policy(
        UserName="genline", PolicyName="s3",
        PolicyDocument='{"Version": "2012-10-17", "Statement": '
        '[{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}',
    )
    key = iam.create_access_key(UserName="genline")["AccessKey"]
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # enforce from now on

    def cfg_with(secret: str) -> DvcConfig:
        return DvcConfig.default(
            tmp_path, remote_url="s3://genline/datasets", endpoint_url=endpoint,
            access_key_id=key["AccessKeyId"], secret_access_key=secret,
        )

    src = save_npz(digits.subset(np.arange(300)), tmp_path / "a.npz")
    commit_dataset(cfg_with(key["SecretAccessKey"]), src)
    assert [a.status for a in verify_versions(cfg_with(key["SecretAccessKey"]))] == ["ok", "ok"]
    with pytest.raises(RemoteAuthError, match="authentication to DVC remote 'genline'.*failed"):
        verify_versions(cfg_with("not-the-secret"))
