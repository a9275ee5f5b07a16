"""The pytest plugin (entry point ``pytest11: etcd_env._pytest_plugin``): fixtures for a real etcd.

In the style of pytest-postgresql: :func:`etcd_proc` makes a fixture that starts
a server, :func:`etcd_noproc` one that uses an existing cluster. The default
fixtures:

- ``etcd_server`` (session): started once per session, or an existing cluster
  when ``--etcd-endpoints`` / ini ``etcd_endpoints`` / ``$ETCD_ENV_ENDPOINTS`` is set;
- ``etcd_client``: a python-etcd v2 client on it;
- ``etcd_namespace``: a unique key prefix and rendezvous run id for one test,
  whose keys are deleted after it;
- ``etcd_server_factory``: more servers, each stopped after the test.

Under pytest-xdist each worker is its own session, so it gets its own server
(about 60 ms to start); with ``ETCD_ENV_ENDPOINTS`` set all workers share one,
kept apart by ``etcd_namespace``'s per-worker prefixes. The README ("pytest-xdist") has
the measurements behind that choice.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from ._environ import BINARY_VAR, ENDPOINTS_VAR
from ._existing import ExistingCluster
from ._http import connect
from ._pytest_options import binary_and_host, option
from ._registry import find_leftovers
from ._server import EtcdServer

if TYPE_CHECKING:
    import etcd
    from _pytest.terminal import TerminalReporter

ServerLike = EtcdServer | ExistingCluster

#: Where torch's rendezvous code keeps a run's state, by run id: deleted with the namespace.
_TORCH_RUN_PATHS = ("/torch/elastic/rendezvous/{run_id}", "/torchelastic/p2p/run_{run_id}")
_LOG_LINES = 40


# -- configuration ------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("etcd_env", "etcd_env: a managed etcd")
    group.addoption(
        "--etcd-binary", dest="etcd_binary", help=f"etcd binary for etcd_server (default: ${BINARY_VAR}, ...)"
    )
    group.addoption("--etcd-host", dest="etcd_host", help="address etcd_server listens on (default 127.0.0.1)")
    group.addoption(
        "--etcd-endpoints",
        dest="etcd_endpoints",
        help=f"use this existing etcd (comma-separated client URLs) instead of starting one; default ${ENDPOINTS_VAR}",
    )
    parser.addini("etcd_binary", "etcd binary for etcd_server")
    parser.addini("etcd_host", "address etcd_server listens on", default="127.0.0.1")
    parser.addini("etcd_endpoints", "existing etcd client URLs, comma-separated")


def configured_server(config: pytest.Config, **options: Any) -> EtcdServer:
    """An unstarted :class:`EtcdServer` with the plugin's binary and host unless ``options`` name them."""
    options.update(binary_and_host(config, options.get("binary"), options.get("host")))
    return EtcdServer(**options)


def configured_endpoints(config: pytest.Config) -> str | None:
    """Command line, then ini, then ``$ETCD_ENV_ENDPOINTS``: the nearest setting wins."""
    return option(config, "etcd_endpoints") or os.environ.get(ENDPOINTS_VAR, "").strip() or None


def worker_id(config: pytest.Config) -> str:
    """``gw0``, ``gw1``... under pytest-xdist; ``main`` otherwise.

    Read from the config, not ``$PYTEST_XDIST_WORKER``: a pytest started from inside an
    xdist worker inherits that variable without being a worker itself.
    """
    workerinput: dict[str, Any] = getattr(config, "workerinput", {})
    return str(workerinput.get("workerid", "main"))


# -- fixture factories ----------------------------------------------------------------------


def etcd_proc(
    binary: str | None = None,
    host: str | None = None,
    scope: Any = "session",
    **server_options: Any,
) -> Any:
    """A fixture that starts an :class:`EtcdServer` (binary/host default to the plugin's options)."""

    @pytest.fixture(scope=scope)
    def etcd_proc_fixture(request: pytest.FixtureRequest) -> Iterator[EtcdServer]:
        server = configured_server(request.config, binary=binary, host=host, **server_options)
        server.start()
        try:
            yield server
        finally:
            server.stop()

    return etcd_proc_fixture


def etcd_noproc(endpoints: str | None = None, scope: Any = "session") -> Any:
    """A fixture that uses an existing cluster (``endpoints``, else the plugin's setting)."""

    @pytest.fixture(scope=scope)
    def etcd_noproc_fixture(request: pytest.FixtureRequest) -> Iterator[ExistingCluster]:
        cluster = ExistingCluster(endpoints or configured_endpoints(request.config))
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop()

    return etcd_noproc_fixture


# -- default fixtures ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def etcd_server(request: pytest.FixtureRequest) -> Iterator[ServerLike]:
    """One etcd for the session (per xdist worker), or the existing cluster when one is configured."""
    endpoints = configured_endpoints(request.config)
    server: ServerLike
    if endpoints:
        server = ExistingCluster(endpoints)
        server.start()
    else:
        server = configured_server(request.config)
        server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def etcd_client(etcd_server: ServerLike) -> etcd.Client:
    return etcd_server.get_client()


def _v3_delete_prefix(server: ServerLike, prefix: str) -> None:
    # python-etcd speaks only v2; the v3 JSON gateway deletes a key range in one request.
    key = prefix.encode()
    range_end = key[:-1] + bytes([key[-1] + 1])
    body = json.dumps(
        {"key": base64.b64encode(key).decode(), "range_end": base64.b64encode(range_end).decode()}
    ).encode()
    # Through _http.connect, so a TLS server's CA and client certificate are used as for every other probe.
    context = server.tls.ssl_context() if server.tls is not None else None
    connection = connect(server.client_url, timeout=10, ssl_context=context)
    try:
        connection.request("POST", "/v3/kv/deleterange", body=body)
        response = connection.getresponse()
        answer = response.read()
    finally:
        connection.close()
    if response.status != 200:
        where = f"{server.client_url}/v3/kv/deleterange"
        raise OSError(f"deleting {prefix!r} through {where}: HTTP {response.status} {answer[:200]!r}")


@dataclass
class EtcdNamespace:
    """A test's own corner of a (possibly shared) server: a key prefix and a rendezvous run id.

    ``prefix`` is a v2 directory and a v3 key prefix (``/etcd-env/<worker>/<id>/``);
    ``run_id`` is unique per test, since torch refuses to reuse a closed run id on a
    server (``RendezvousClosedError``). Both are deleted after the test.
    """

    server: ServerLike
    prefix: str
    run_id: str
    extra_paths: list[str] = field(default_factory=list)

    def key(self, name: str) -> str:
        return self.prefix + name.lstrip("/")

    @property
    def torch_paths(self) -> list[str]:
        return [path.format(run_id=self.run_id) for path in _TORCH_RUN_PATHS]

    def cleanup(self) -> None:
        import etcd  # noqa: PLC0415 - python-etcd pulls in urllib3: keep it off the import path

        client = self.server.get_client()
        for path in [self.prefix.rstrip("/"), *self.torch_paths, *self.extra_paths]:
            try:
                client.delete(path, recursive=True, dir=True)
            except etcd.EtcdKeyNotFound:
                pass
            except etcd.EtcdNotDir:
                client.delete(path)
        _v3_delete_prefix(self.server, self.prefix)

    def log_tail(self, lines: int = _LOG_LINES) -> str:
        return self.server.log_tail(lines)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[-60:].strip("_") or "test"


@pytest.fixture
def etcd_namespace(request: pytest.FixtureRequest, etcd_server: ServerLike) -> Iterator[EtcdNamespace]:
    unique = uuid.uuid4().hex[:12]
    name = _slug(request.node.name)
    namespace = EtcdNamespace(
        server=etcd_server,
        prefix=f"/etcd-env/{worker_id(request.config)}/{name}-{unique}/",
        run_id=f"{name}-{unique}",
    )
    yield namespace
    try:
        namespace.cleanup()
    except (OSError, http.client.HTTPException) as error:
        # The server is gone (the test may have stopped it on purpose): nothing left to clean.
        if getattr(etcd_server, "running", True):
            raise RuntimeError(f"etcd_namespace could not delete {namespace.prefix}: {error}") from error


class EtcdServerFactory:
    """Starts extra servers with the plugin's binary and host as defaults; stops them all at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self.started: list[EtcdServer] = []

    def __call__(self, **options: Any) -> EtcdServer:
        server = configured_server(self._config, **options)
        server.start()
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


@pytest.fixture
def etcd_server_factory(request: pytest.FixtureRequest) -> Iterator[EtcdServerFactory]:
    """``etcd_server_factory(**EtcdServer options)`` -> a started server, stopped after the test."""
    factory = EtcdServerFactory(request.config)
    try:
        yield factory
    finally:
        factory.stop_all()


# -- reporting ------------------------------------------------------------------------------


def _log_sources(item: pytest.Item) -> list[tuple[str, Any]]:
    """Every fixture value of ``item`` that can show an etcd log, by fixture name."""
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    sources: list[tuple[str, Any]] = []
    seen: set[int] = set()
    for name, value in funcargs.items():
        candidates = [value, *value.started] if isinstance(value, EtcdServerFactory) else [value]
        for index, candidate in enumerate(candidates):
            target = getattr(candidate, "server", candidate) if isinstance(candidate, EtcdNamespace) else candidate
            if not callable(getattr(target, "log_tail", None)) or id(target) in seen:
                continue
            seen.add(id(target))
            sources.append((name if index == 0 else f"{name}[{index - 1}]", target))
    return sources


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report: pytest.TestReport = yield
    if not report.failed:
        return report
    for name, source in _log_sources(item):
        try:
            tail = source.log_tail(_LOG_LINES)
        except OSError as error:
            tail = f"(could not read etcd's log: {error})"
        if tail:
            where = getattr(source, "log_path", None)
            title = f"etcd log: {name}" + (f" ({where})" if where else "") + f", last {_LOG_LINES} lines"
            report.sections.append((title, tail))
    return report


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    # Runs after session fixtures are torn down: whatever is left now outlived its owner.
    leftovers = find_leftovers()
    if not leftovers:
        return
    terminalreporter.write_sep("=", "etcd_env: leftovers", yellow=True)
    for leftover in leftovers:
        terminalreporter.write_line(f"WARNING left over: {leftover.describe()}", yellow=True)
    terminalreporter.write_line("Run `etcd-env reap` to reclaim them.", yellow=True)


# The cluster fixtures (etcd_cluster, etcd_cluster_proc) live in their own module; importing
# them here registers them with pytest. No try/except: a missing module must fail loudly.
from ._pytest_cluster import *  # noqa: E402, F403
