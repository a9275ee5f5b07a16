"""Names of the environment variables etcd_env reads and exports, in one place."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

# Read.
BINARY_VAR = "ETCD_ENV_BINARY"
TORCH_BINARY_VAR = "TORCHELASTIC_ETCD_BINARY_PATH"
EXPECT_VERSION_VAR = "ETCD_ENV_EXPECT_VERSION"
STATE_DIR_VAR = "ETCD_ENV_STATE_DIR"
PORT_RANGE_VAR = "ETCD_ENV_PORT_RANGE"
ENDPOINTS_VAR = "ETCD_ENV_ENDPOINTS"
# The installed-etcd cache (`etcd-env install`): where it lives, which version to run, where to download.
CACHE_DIR_VAR = "ETCD_ENV_CACHE_DIR"
VERSION_VAR = "ETCD_ENV_VERSION"
MIRROR_VAR = "ETCD_ENV_MIRROR"

# Exported to commands and sessions that use a server.
ENDPOINT_VAR = "ETCD_ENV_ENDPOINT"
URL_VAR = "ETCD_ENV_URL"
# Host and port apart (pifpaf's habit): splitting ETCD_ENV_ENDPOINT on ":" breaks on IPv6.
HOST_VAR = "ETCD_ENV_HOST"
PORT_VAR = "ETCD_ENV_PORT"
ETCDCTL_ENDPOINTS_VAR = "ETCDCTL_ENDPOINTS"
ETCDCTL_API_VAR = "ETCDCTL_API"
# Exported for a TLS server or cluster: etcdctl's names for the CA and client certificate.
ETCDCTL_CACERT_VAR = "ETCDCTL_CACERT"
ETCDCTL_CERT_VAR = "ETCDCTL_CERT"
ETCDCTL_KEY_VAR = "ETCDCTL_KEY"


def endpoint_environment(client_urls: Sequence[str]) -> dict[str, str]:
    """The variables that point a command at a running server or cluster.

    ``ETCD_ENV_ENDPOINT`` is ``host:port`` (what torchrun's ``--rdzv-endpoint``
    takes); ``ETCD_ENV_HOST`` and ``ETCD_ENV_PORT`` are the same apart, the host
    without IPv6 brackets; ``ETCD_ENV_ENDPOINTS`` makes a nested etcd_env (the pytest
    plugin, a nox session) use this server instead of starting its own.
    """
    if not client_urls:
        raise ValueError("at least one client URL is needed")
    first = client_urls[0]
    parts = urlsplit(first)
    return {
        ENDPOINT_VAR: first.split("://", 1)[-1],
        HOST_VAR: parts.hostname or "",
        PORT_VAR: str(parts.port or ""),
        URL_VAR: first,
        ENDPOINTS_VAR: ",".join(client_urls),
        ETCDCTL_ENDPOINTS_VAR: ",".join(client_urls),
        ETCDCTL_API_VAR: "3",
    }
