"""Fixture factories for a real etcd, in the style of pytest-postgresql's ``factories``.

Import them in your conftest.py; the ``etcd_env`` pytest plugin (loaded by its entry
point) gives their defaults the command-line and ini settings (``--etcd-binary``,
``--etcd-host``, ``--etcd-port``, ``--etcd-timeout``, ``--etcd-log-dir``...)::

    from etcd_env import fixtures

    my_etcd = fixtures.etcd_proc(scope="session")        # starts an EtcdServer
    shared_etcd = fixtures.etcd_noproc()                  # uses an existing cluster
    my_cluster = fixtures.etcd_cluster_proc(3)            # a local 3-member cluster
    my_client = fixtures.etcd_client_factory("my_etcd")   # a client on your own server
    my_ns = fixtures.etcd_namespace_factory("my_etcd")    # an isolated corner of it
    my_clean = fixtures.etcd_clean_client_factory("my_etcd")

Which fixtures isolate one test from another:

- a *namespace* (``etcd_namespace_factory``, the plugin's ``etcd_namespace``) gives each
  test its own key prefix and rendezvous run id and deletes, after the test, what was
  written there. It never touches keys outside them, so it is safe on a shared cluster.
- a *clean client* (``etcd_clean_client_factory``, the plugin's ``etcd_clean_client``)
  starts each test on an empty key space: it deletes every key, v2 and v3, when anything
  was written since it last emptied it. It refuses an existing cluster (whose keys are
  not ours to wipe); use a namespace there.
- a plain *client* (``etcd_client_factory``, the plugin's ``etcd_client``) isolates
  nothing: what one test writes, the next one reads.

On a server the process started itself, both kinds first read (on one kept-alive
connection) whether anything is there, and send deletes only for what is: a test that
wrote nothing costs two local reads. See ``benchmarks/isolation.py`` for the figures.
"""

from __future__ import annotations

import http.client
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from ._cluster import EtcdCluster
from ._existing import ExistingCluster
from ._keyspace import KeyspaceTracker
from ._pytest_options import (
    configured_cluster,
    configured_endpoints,
    configured_server,
    start_timeout,
    started,
)
from ._server import EtcdServer

if TYPE_CHECKING:
    import etcd

__all__ = [
    "EtcdNamespace",
    "EtcdServerFactory",
    "etcd_clean_client_factory",
    "etcd_client_factory",
    "etcd_cluster_proc",
    "etcd_namespace_factory",
    "etcd_noproc",
    "etcd_proc",
    "keyspace_tracker",
    "worker_id",
]

ServerLike = EtcdServer | ExistingCluster | EtcdCluster

#: Where torch's rendezvous code keeps a run's state, by run id: deleted with the namespace.
TORCH_RUN_PATHS = ("/torch/elastic/rendezvous/{run_id}", "/torchelastic/p2p/run_{run_id}")


def worker_id(config: pytest.Config) -> str:
    """``gw0``, ``gw1``... under pytest-xdist; ``main`` otherwise.

    Read from the config, not ``$PYTEST_XDIST_WORKER``: a pytest started from inside an
    xdist worker inherits that variable without being a worker itself.
    """
    workerinput: dict[str, Any] = getattr(config, "workerinput", {})
    return str(workerinput.get("workerid", "main"))


# -- servers ------------------------------------------------------------------------------


def etcd_proc(
    binary: str | None = None,
    host: str | None = None,
    scope: Any = "session",
    *,
    port: int | None = None,
    timeout: float | None = None,
    **server_options: Any,
) -> Any:
    """A fixture that starts an :class:`EtcdServer` and stops it after ``scope``.

    ``binary``, ``host``, ``port`` and ``timeout`` default to the plugin's options;
    ``server_options`` go to :class:`EtcdServer` (``tls=True``, ``heartbeat_ms``...).
    """

    @pytest.fixture(scope=scope)
    def etcd_proc_fixture(request: pytest.FixtureRequest) -> Iterator[EtcdServer]:
        server = configured_server(
            request.config,
            binary=binary,
            host=host,
            client_port=port,
            label=request.fixturename or "etcd_proc",
            **server_options,
        )
        with started(server, request.config, timeout):
            yield server

    return etcd_proc_fixture


def etcd_noproc(endpoints: str | None = None, scope: Any = "session") -> Any:
    """A fixture that uses an existing cluster: ``endpoints``, else ``--etcd-endpoints`` / ini / env."""

    @pytest.fixture(scope=scope)
    def etcd_noproc_fixture(request: pytest.FixtureRequest) -> Iterator[ExistingCluster]:
        if endpoints is not None:
            cluster = ExistingCluster(endpoints, source="etcd_noproc(endpoints=...)")
        else:
            urls, source = configured_endpoints(request.config)
            cluster = ExistingCluster(urls, source=source) if urls else ExistingCluster()
        with cluster:
            yield cluster

    return etcd_noproc_fixture


def etcd_cluster_proc(
    members: int = 3,
    *,
    binary: str | None = None,
    host: str | None = None,
    scope: Any = "function",
    timeout: float | None = None,
    **cluster_options: Any,
) -> Any:
    """A fixture that starts an :class:`EtcdCluster` of ``members`` and stops it afterwards.

    The default scope is the test, because a fault test (kill, pause, restart a member)
    leaves its cluster changed. ``cluster_options`` go to :class:`EtcdCluster`.
    """

    @pytest.fixture(scope=scope)
    def etcd_cluster_fixture(request: pytest.FixtureRequest) -> Iterator[EtcdCluster]:
        cluster = configured_cluster(
            request.config,
            members,
            binary=binary,
            host=host,
            label=request.fixturename or "etcd_cluster",
            **cluster_options,
        )
        with started(cluster, request.config, timeout):
            yield cluster

    return etcd_cluster_fixture


class EtcdServerFactory:
    """Starts extra servers with the plugin's options as defaults; stops them all at the end."""

    def __init__(self, config: pytest.Config, label: str = "etcd_server_factory") -> None:
        self._config = config
        self._label = label
        self.started: list[EtcdServer] = []

    def __call__(self, *, timeout: float | None = None, **options: Any) -> EtcdServer:
        server = configured_server(self._config, label=f"{self._label}-{len(self.started)}", **options)
        server.start(timeout=start_timeout(self._config, timeout))
        self.started.append(server)
        return server

    def stop_all(self) -> None:
        errors: list[BaseException] = []
        for server in reversed(self.started):
            try:
                server.stop()
            except Exception as error:  # stop the others, then report the first failure
                errors.append(error)
        self.started = []
        if errors:
            raise errors[0]


# -- clients and isolation, on any server fixture -------------------------------------------

_TRACKERS = pytest.StashKey[dict[int, tuple[object, KeyspaceTracker]]]()


def keyspace_tracker(config: pytest.Config, server: ServerLike) -> KeyspaceTracker:
    """The session's one kept-alive tracker for ``server`` (made on first use, closed at the end)."""
    trackers = config.stash.setdefault(_TRACKERS, {})
    known = trackers.get(id(server))
    if known is not None and known[0] is server:
        return known[1]
    if known is not None:
        known[1].close()  # a server that is gone, whose id was reused
    context = server.tls.ssl_context() if server.tls is not None else None
    tracker = KeyspaceTracker(server.client_url, context, look_first=isinstance(server, EtcdServer))
    trackers[id(server)] = (server, tracker)
    return tracker


def close_trackers(config: pytest.Config) -> None:
    for _, tracker in config.stash.get(_TRACKERS, {}).values():
        tracker.close()
    config.stash[_TRACKERS] = {}


def etcd_client_factory(server_fixture: str, scope: Any = "function") -> Any:
    """A fixture giving a python-etcd client on the server fixture named ``server_fixture``.

    It isolates nothing: keys written in one test are there in the next.
    """

    @pytest.fixture(scope=scope)
    def etcd_client_fixture(request: pytest.FixtureRequest) -> etcd.Client:
        server: ServerLike = request.getfixturevalue(server_fixture)
        return server.get_client()

    return etcd_client_fixture


def etcd_clean_client_factory(server_fixture: str) -> Any:
    """A fixture giving a client on an empty key space (v2 and v3), on a server this process started.

    Before the test, every v2 and v3 key there is deleted (two reads when there is none).
    An existing cluster is refused: its keys are not ours to delete.
    """

    @pytest.fixture
    def etcd_clean_client_fixture(request: pytest.FixtureRequest) -> etcd.Client:
        server: ServerLike = request.getfixturevalue(server_fixture)
        if isinstance(server, ExistingCluster):
            raise pytest.UsageError(
                f"{request.fixturename} empties the whole key space, and {server_fixture!r} is an existing "
                f"cluster ({server.client_url}) whose keys are not ours to delete. Use a namespace "
                "(etcd_namespace) there, or a server of your own (etcd_proc)."
            )
        keyspace_tracker(request.config, server).make_clean()
        return server.get_client()

    return etcd_clean_client_fixture


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[-60:].strip("_") or "test"


@dataclass
class EtcdNamespace:
    """A test's own corner of a (possibly shared) server: a key prefix and a rendezvous run id.

    ``prefix`` is a v2 directory and a v3 key prefix (``/etcd-env/<worker>/<id>/``);
    ``run_id`` is unique per test, since torch refuses to reuse a closed run id on a
    server (``RendezvousClosedError``). After the test, what was written under them (and
    under any path added to ``extra_paths``) is deleted; nothing else is touched.
    """

    server: ServerLike
    prefix: str
    run_id: str
    extra_paths: list[str] = field(default_factory=list)
    tracker: KeyspaceTracker | None = field(default=None, repr=False)

    def key(self, name: str) -> str:
        return self.prefix + name.lstrip("/")

    @property
    def torch_paths(self) -> list[str]:
        return [path.format(run_id=self.run_id) for path in TORCH_RUN_PATHS]

    def cleanup(self) -> bool:
        """Delete what was written in this namespace; True if anything had been written on the server."""
        tracker = self.tracker
        if tracker is None:
            context = self.server.tls.ssl_context() if self.server.tls is not None else None
            tracker = KeyspaceTracker(self.server.client_url, context, look_first=False)
        try:
            return tracker.delete([self.prefix, *self.torch_paths, *self.extra_paths], [self.prefix])
        finally:
            if self.tracker is None:
                tracker.close()

    def log_tail(self, lines: int = 40) -> str:
        return self.server.log_tail(lines)


def etcd_namespace_factory(server_fixture: str) -> Any:
    """A fixture giving each test an :class:`EtcdNamespace` on the server fixture named ``server_fixture``.

    It isolates tests that keep to their namespace, on a server of their own or a shared one.
    """

    @pytest.fixture
    def etcd_namespace_fixture(request: pytest.FixtureRequest) -> Iterator[EtcdNamespace]:
        server: ServerLike = request.getfixturevalue(server_fixture)
        unique = uuid.uuid4().hex[:12]
        name = _slug(request.node.name)
        namespace = EtcdNamespace(
            server=server,
            prefix=f"/etcd-env/{worker_id(request.config)}/{name}-{unique}/",
            run_id=f"{name}-{unique}",
            tracker=keyspace_tracker(request.config, server),
        )
        yield namespace
        if not getattr(server, "running", True):
            return  # the test stopped the server on purpose: nothing is left to delete
        try:
            namespace.cleanup()
        except (OSError, http.client.HTTPException) as error:
            raise RuntimeError(
                f"{request.fixturename} could not delete {namespace.prefix} on {server.client_url}: {error}"
            ) from error

    return etcd_namespace_fixture
