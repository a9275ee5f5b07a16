"""One HTTP(S) connection to an etcd URL, for the small requests etcd_env makes itself.

``http.client`` rather than urllib3/python-etcd: it imports in a few milliseconds
and lets each probe set its own timeout, which the start path needs.
"""

from __future__ import annotations

import http.client
import ssl
from urllib.parse import urlsplit


def url_host(address: str) -> str:
    """``address`` as the host part of a URL (or a ``host:port``): an IPv6 literal goes in brackets."""
    return f"[{address}]" if ":" in address else address


def connect(url: str, *, timeout: float, ssl_context: ssl.SSLContext | None = None) -> http.client.HTTPConnection:
    """An unopened connection to ``url``'s host and port (https when the URL says so)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 2379
    if parts.scheme == "https":
        return http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl_context)
    return http.client.HTTPConnection(host, port, timeout=timeout)
