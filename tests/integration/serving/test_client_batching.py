"""genline.client against a real Triton: requests over max_batch_size are split and reassembled."""

from __future__ import annotations

import numpy as np
import pytest

from genline.client import GenerationError, GenlineClient
from genline.serving import store

pytestmark = pytest.mark.integration


def test_three_times_max_batch_equals_separate_calls_in_order(triton, published):
    with GenlineClient(triton.cfg.grpc_url, retries=0, timeout_s=60) as client:
        limit = client.max_batch_size()
        assert limit == 64  # the committed config.pbtxt, read from the server
        n = 3 * limit
        labels = np.arange(n, dtype=np.int64) % 10
        z = np.random.default_rng(5).standard_normal((n, client.latent_dim())).astype(np.float32)
        whole = client.generate(labels, z=z, request_id="split-whole")
        parts = [
            client.generate(labels[i : i + limit], z=z[i : i + limit], request_id=f"split-{i}")
            for i in range(0, n, limit)
        ]
    assert whole.images.shape == (n, 1, 8, 8)
    np.testing.assert_array_equal(whole.images, np.concatenate([p.images for p in parts]))
    np.testing.assert_array_equal(whole.labels, labels)
    assert whole.model_version == published and whole.attempts == 3
    # each chunk is its own logged request, in order, with the labels it carried
    df = store.read_predictions(triton.cfg.resolved_predlog_dir())
    for k in range(3):
        rows = df[df.request_id == f"split-whole-{k}"].sort_values("sample_index")
        assert rows.label.tolist() == labels[k * limit : (k + 1) * limit].tolist()


def test_a_request_within_max_batch_is_one_request(triton, published):
    with GenlineClient(triton.cfg.grpc_url, retries=0) as client:
        out = client.generate([1, 2, 3], seed=3, request_id="unsplit")
    assert out.images.shape == (3, 1, 8, 8) and out.attempts == 1
    df = store.read_predictions(triton.cfg.resolved_predlog_dir())
    assert set(df[df.request_id.str.startswith("unsplit")].request_id) == {"unsplit"}


@pytest.mark.parametrize(
    "labels,z,match",
    [
        ([], None, "no labels"),
        ([1, 2], np.zeros((3, 64), np.float32), r"z must have shape \[2, latent_dim\]"),
    ],
)
def test_bad_shapes_are_refused_before_sending(labels, z, match, triton, published):
    with GenlineClient(triton.cfg.grpc_url, retries=0) as client:
        with pytest.raises(GenerationError, match=match) as err:
            client.generate(labels, z=z)
    assert err.value.status == "INVALID_ARGUMENT"
