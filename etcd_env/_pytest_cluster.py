"""pytest fixtures for a local etcd cluster, registered by the etcd_env plugin.

- :func:`etcd_cluster_proc` makes a fixture that starts an :class:`EtcdCluster`
  (members, scope and any cluster option chosen by the caller);
- ``etcd_cluster``: a 3-member cluster per test, stopped after it.

These always start a local cluster, also when an existing cluster is configured
(``--etcd-endpoints`` / ``$ETCD_ENV_ENDPOINTS``): a cluster fixture exists for its
fault controls (kill, pause, restart a member), and those cannot act on someone
else's cluster. The default scope is the test, because a fault test leaves its
cluster changed; a 3-member cluster starts in about 160 ms (README, "A local cluster").
The binary and host follow the plugin's ``--etcd-binary`` / ``--etcd-host``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ._cluster import EtcdCluster
from ._pytest_options import binary_and_host

__all__ = ["etcd_cluster", "etcd_cluster_proc"]


def etcd_cluster_proc(
    members: int = 3,
    *,
    binary: str | None = None,
    host: str | None = None,
    scope: Any = "function",
    timeout: float = 60,
    **cluster_options: Any,
) -> Any:
    """A fixture that starts an :class:`EtcdCluster` of ``members`` and stops it afterwards.

    ``cluster_options`` go to :class:`EtcdCluster` (``tls=True``, ``enable_v2=False``, timers...).
    """

    @pytest.fixture(scope=scope)
    def etcd_cluster_fixture(request: pytest.FixtureRequest) -> Iterator[EtcdCluster]:
        cluster = EtcdCluster(members, **binary_and_host(request.config, binary, host), **cluster_options)
        cluster.start(timeout=timeout)
        try:
            yield cluster
        finally:
            cluster.stop()

    return etcd_cluster_fixture


etcd_cluster = etcd_cluster_proc(3)
