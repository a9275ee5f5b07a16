"""``ExistingCluster``: an etcd someone else runs, checked and used, never spawned or stopped.

The counterpart of envtest's ``USE_EXISTING_CLUSTER`` and pytest-postgresql's
``noproc`` fixtures. Endpoints come from the caller or ``$ETCD_ENV_ENDPOINTS``
(comma-separated client URLs, what ``etcd-env run`` and ``etcd-env env``
export), so a nested pytest or nox run reuses its parent's server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._client import client_environment, python_etcd_client
from ._common.environ import (
    ENDPOINTS_VAR,
    ETCDCTL_CACERT_VAR,
    ETCDCTL_CERT_VAR,
    ETCDCTL_KEY_VAR,
)
from ._common.errors import ClusterUnavailableError, ForeignListenerError
from ._process.lifecycle import StartStopContext
from ._process.readiness import HttpHealthCheck
from ._process.tls import ClientTls

if TYPE_CHECKING:
    import etcd


def parse_endpoints(raw: str | Sequence[str], source: str = f"${ENDPOINTS_VAR}") -> list[str]:
    """Client URLs from ``"http://h:p,https://h2:p2"`` or a list; a bare ``host:port`` means http.

    ``source`` names where the text came from (a flag, an ini key, the variable), for the error.
    """
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    urls: list[str] = []
    for item in (part.strip() for part in items):
        if not item:
            continue
        url = item if "://" in item else f"http://{item}"
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
            raise ValueError(
                f"{item!r} (from {source}) is not an etcd client URL: expected http://HOST:PORT or "
                "https://HOST:PORT, comma-separated"
            )
        urls.append(url.rstrip("/"))
    if not urls:
        raise ValueError(f"no etcd endpoints in {source}: give http://HOST:PORT[,...]")
    return urls


class ExistingCluster(StartStopContext):
    """An already running etcd (one member or several), with :class:`EtcdServer`'s accessors.

    ``start()`` only checks that every endpoint answers ``GET /health`` as healthy;
    ``stop()`` only forgets: the cluster belongs to someone else. Keys a test wrote
    stay unless the test (or the pytest plugin's ``etcd_namespace``) removes them.
    """

    def __init__(
        self,
        endpoints: str | Sequence[str] | None = None,
        *,
        tls: ClientTls | None = None,
        environ: Mapping[str, str] | None = None,
        source: str | None = None,
    ) -> None:
        """``source`` names where ``endpoints`` came from (``--endpoints``, ini ``etcd_endpoints``...), for errors."""
        self._endpoints_arg = endpoints
        if source is not None:
            self._source = source
        elif endpoints is None:
            self._source = f"${ENDPOINTS_VAR}"
        else:
            self._source = "the endpoints given to ExistingCluster"
        self._environ = environ
        self._tls_arg = tls
        self._tls: ClientTls | None = None
        self._urls: list[str] = []

    @classmethod
    def configured(cls, environ: Mapping[str, str] | None = None) -> bool:
        """Whether ``$ETCD_ENV_ENDPOINTS`` names a cluster to use."""
        env = os.environ if environ is None else environ
        return bool(env.get(ENDPOINTS_VAR, "").strip())

    def _configured_urls(self) -> list[str]:
        if self._endpoints_arg is not None:
            return parse_endpoints(self._endpoints_arg, self._source)
        env = os.environ if self._environ is None else self._environ
        raw = env.get(ENDPOINTS_VAR, "")
        if not raw.strip():
            raise ValueError(f"no etcd endpoints given: pass some, or set {ENDPOINTS_VAR}=http://HOST:PORT[,...]")
        return parse_endpoints(raw, self._source)

    def _configured_tls(self) -> ClientTls | None:
        """etcdctl's variables, as ``etcd-env run --tls`` exports them for a nested run."""
        env = os.environ if self._environ is None else self._environ
        paths = [env.get(var, "") for var in (ETCDCTL_CACERT_VAR, ETCDCTL_CERT_VAR, ETCDCTL_KEY_VAR)]
        if not any(paths):
            return None
        if not all(paths):
            raise ValueError(
                f"{ETCDCTL_CACERT_VAR}, {ETCDCTL_CERT_VAR} and {ETCDCTL_KEY_VAR} go together: "
                "set all three for a TLS cluster, or none"
            )
        return ClientTls(Path(paths[0]), Path(paths[1]), Path(paths[2]))

    # -- lifecycle: check and forget -------------------------------------------------

    def start(self, timeout: float = 5.0, num_retries: int = 1, stderr: object = None) -> None:
        """Check every endpoint once; raise :class:`ClusterUnavailableError` naming each one that failed.

        ``num_retries`` and ``stderr`` exist for signature parity with :meth:`EtcdServer.start`:
        nothing is spawned, so there is nothing to retry or to redirect.
        """
        urls = self._configured_urls()
        self._tls = self._tls_arg or self._configured_tls()
        problems: list[str] = []
        for url in urls:
            problem = self._problem(url, timeout)
            if problem:
                problems.append(f"  - {url}: {problem}")
        if problems:
            listed = "\n".join(problems)
            drop = f"unset {ENDPOINTS_VAR}" if self._source == f"${ENDPOINTS_VAR}" else f"drop {self._source}"
            raise ClusterUnavailableError(
                f"the existing etcd cluster is not usable:\n{listed}\n"
                f'Start it (e.g. `etcd-env up`, then `eval "$(etcd-env env)"`), fix {self._source} '
                f"(now {','.join(urls)}), or {drop} to let etcd_env start its own server."
            )
        self._urls = urls

    def _problem(self, url: str, timeout: float) -> str:
        context = self._tls.ssl_context() if self._tls is not None else None
        check = HttpHealthCheck(url, member_name="", ssl_context=context)
        try:
            healthy = check.healthy_once(timeout)
        except ForeignListenerError as error:
            return str(error)
        except OSError as error:
            return f"unreachable ({error})"
        if healthy:
            return ""
        return "connection refused, timed out, or /health is not true (is etcd running there?)"

    def stop(self) -> None:
        """Forget the endpoints. The cluster is not ours: nothing is stopped or deleted."""
        self._urls = []

    @property
    def running(self) -> bool:
        return bool(self._urls)

    # -- accessors, as on EtcdServer ---------------------------------------------------

    def _checked_urls(self) -> list[str]:
        if not self._urls:
            raise RuntimeError("start() the ExistingCluster first: it checks the endpoints before handing them out")
        return self._urls

    @property
    def client_urls(self) -> list[str]:
        return list(self._checked_urls())

    @property
    def client_url(self) -> str:
        return self._checked_urls()[0]

    def get_host(self) -> str:
        return urlsplit(self.client_url).hostname or ""

    def get_port(self) -> int:
        return urlsplit(self.client_url).port or 0

    def get_endpoint(self) -> str:
        return self.client_url.split("://", 1)[1]

    def get_client(self, **kwargs: Any) -> etcd.Client:
        """A python-etcd v2 client over every endpoint (it fails over between them)."""
        return python_etcd_client(self._checked_urls(), self._tls, **kwargs)

    def log_tail(self, lines: int = 25) -> str:
        """Empty: an existing cluster's log is wherever its owner keeps it."""
        return ""

    @property
    def tls(self) -> ClientTls | None:
        return self._tls

    def environment(self) -> dict[str, str]:
        return client_environment(self.client_urls, self._tls)

    def __repr__(self) -> str:
        state = f"using {','.join(self._urls)}" if self._urls else "not checked"
        return f"<ExistingCluster {state}>"
