"""training_dataset pushed to an S3-compatible remote, credentials bound from the environment."""

import json

import pytest

from tests.data.s3 import ACCESS_KEY, SECRET_KEY, s3_endpoint  # noqa: F401  (a fixture)

from .conftest import run_ingest, run_training_dataset

pytestmark = pytest.mark.integration


def test_training_dataset_to_s3(defs, instance, state, s3_endpoint, monkeypatch):  # noqa: F811
    endpoint, client = s3_endpoint
    monkeypatch.setenv("GENLINE_DVC_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("GENLINE_DVC_SECRET_ACCESS_KEY", SECRET_KEY)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    assert run_ingest(defs, instance, "2026-11-01").success
    result = run_training_dataset(
        defs,
        instance,
        run_config={
            "resources": {
                "dvc_remote": {
                    "config": {
                        "remote_url": "s3://genline/datasets",
                        "endpoint_url": endpoint,
                        "access_key_id": {"env": "GENLINE_DVC_ACCESS_KEY_ID"},
                        "secret_access_key": {"env": "GENLINE_DVC_SECRET_ACCESS_KEY"},
                    }
                }
            }
        },
    )
    assert result.success
    md5 = result.output_for_node("training_dataset")["dvc_md5"]
    key = f"datasets/files/md5/{md5[:2]}/{md5[2:]}"
    assert client.head_object(Bucket="genline", Key=key)["ContentLength"] > 0
    assert all(e.passed for e in result.get_asset_check_evaluations())  # restorable from S3
    stored = json.dumps(instance.get_run_by_id(result.run_id).run_config)
    assert SECRET_KEY not in stored and "GENLINE_DVC_SECRET_ACCESS_KEY" in stored
