"""A test that needs an etcd: run it with `etcd-env run -- pytest examples/`.

`etcd-env run` exports ETCD_ENV_ENDPOINT (host:port, what torchrun's --rdzv-endpoint
takes); without it this test fails rather than skips, so a missing server is seen.
"""

from __future__ import annotations

import os

import etcd


def test_write_then_read() -> None:
    host, port = os.environ["ETCD_ENV_ENDPOINT"].split(":")
    client = etcd.Client(host=host, port=int(port))
    client.write("/examples/hello", "world")
    assert client.read("/examples/hello").value == "world"
