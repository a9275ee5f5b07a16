"""What a client needs to reach a server or cluster: the variables to export, a python-etcd client.

Shared by :class:`EtcdServer`, :class:`EtcdCluster` and :class:`ExistingCluster`, which
differ in how they come to have client URLs and TLS files, not in how clients use them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._common.environ import endpoint_environment
from ._process.http import url_host
from ._process.tls import ClientTls

if TYPE_CHECKING:
    import etcd


def client_environment(client_urls: Sequence[str], tls: ClientTls | None) -> dict[str, str]:
    """The variables that point a command at these members (see ``etcd-env run``)."""
    environment = endpoint_environment(client_urls)
    if tls is not None:
        environment.update(tls.environment())
    return environment


def python_etcd_client(client_urls: Sequence[str], tls: ClientTls | None, **overrides: Any) -> etcd.Client:
    """A python-etcd v2 client on these members; with several, it fails over between them."""
    import etcd  # noqa: PLC0415 - python-etcd pulls in urllib3: keep it off the start path

    parts = [urlsplit(url) for url in client_urls]
    # python-etcd formats "{host}:{port}" itself, so an IPv6 address must come bracketed.
    hosts = tuple((url_host(part.hostname or "127.0.0.1"), part.port or 2379) for part in parts)
    options: dict[str, Any] = {
        "host": hosts[0][0] if len(hosts) == 1 else hosts,
        "port": hosts[0][1],
        "protocol": parts[0].scheme,
        "allow_reconnect": len(hosts) > 1,
        "version_prefix": "/v2",
        # Above etcd's own request timeout (5 s + 2 elections), so its answer is heard.
        "read_timeout": 10,
    }
    if tls is not None:
        options.update(tls.client_options())
    options.update(overrides)
    return etcd.Client(**options)
