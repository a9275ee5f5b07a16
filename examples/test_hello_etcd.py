"""A test that needs an etcd: run it with `etcd-env run -- pytest examples/`.

`etcd-env run` exports ETCD_ENV_HOST and ETCD_ENV_PORT (and ETCD_ENV_ENDPOINT, the
host:port torchrun's --rdzv-endpoint takes); reading host and port apart works for
`etcd-env run --host ::1` too. Without them this test fails rather than skips, so a
missing server is seen.
"""

from __future__ import annotations

import os

import etcd


def test_write_then_read() -> None:
    host, port = os.environ["ETCD_ENV_HOST"], int(os.environ["ETCD_ENV_PORT"])
    # python-etcd writes "{host}:{port}" into its URLs, so an IPv6 address needs its brackets.
    client = etcd.Client(host=f"[{host}]" if ":" in host else host, port=port)
    client.write("/examples/hello", "world")
    assert client.read("/examples/hello").value == "world"
