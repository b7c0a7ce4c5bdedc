"""An S3-compatible server on a free loopback port (moto's threaded server, S3 REST API)."""

from __future__ import annotations

import pytest

ACCESS_KEY = "genline-test-key"
SECRET_KEY = "genline-test-secret"


@pytest.fixture()
def s3_endpoint():
    """(endpoint URL, boto3 client) with an empty bucket `genline`."""
    boto3 = pytest.importorskip("boto3")
    server_mod = pytest.importorskip("moto.server")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="genline")
    yield endpoint, client
    server.stop()
