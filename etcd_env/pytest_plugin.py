"""The etcd_env pytest plugin, registered by the ``pytest11`` entry point named ``etcd_env``.

Disable it with ``-p no:etcd_env``; load it where the entry point is not installed (a
checkout on ``PYTHONPATH``) with ``-p etcd_env.pytest_plugin``. The fixtures:

- ``etcd_server`` (session): an etcd started once per session (per xdist worker), or the
  existing cluster named by ``--etcd-endpoints`` / ini ``etcd_endpoints`` / ``$ETCD_ENV_ENDPOINTS``;
- ``etcd_client``: a python-etcd v2 client on it. **Not isolated**: what one test
  writes, the next one reads;
- ``etcd_namespace``: **isolated**: a key prefix and a rendezvous run id of the test's own,
  whose keys are deleted after it; safe on a shared cluster, and what xdist workers
  sharing one cluster use;
- ``etcd_clean_client``: **isolated**: a client on an empty key space (every v2 and v3
  key deleted before the test); only on a server the plugin started, never on an
  existing cluster;
- ``etcd_server_factory``: more servers, each stopped after the test;
- ``etcd_cluster``: a local 3-member cluster per test.

Your own fixtures come from the factories in :mod:`etcd_env.fixtures`. Options (each also
an ini key without the dashes): ``--etcd-binary``, ``--etcd-host``, ``--etcd-port``,
``--etcd-timeout``, ``--etcd-expect-version``, ``--etcd-log-dir``, ``--etcd-endpoints``.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from . import fixtures
from ._binary.defects import defects_of
from ._binary.resolve import pin_verdict, resolve_binary
from ._common.errors import EtcdEnvError
from ._process.registry import find_leftovers
from ._pytest_options import (
    add_options,
    check_options,
    configured_endpoints,
    configured_port,
    configured_server,
    existing_cluster,
    setting,
    started,
)

if TYPE_CHECKING:
    from _pytest.terminal import TerminalReporter

    from ._existing import ExistingCluster
    from ._server import EtcdServer

_LOG_LINES = 40


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    check_options(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    fixtures.close_trackers(config)


@pytest.fixture(scope="session")
def etcd_server(request: pytest.FixtureRequest) -> Iterator[EtcdServer | ExistingCluster]:
    """One etcd for the session (per xdist worker), or the existing cluster when one is configured."""
    existing = existing_cluster(request.config)
    if existing is not None:
        with existing:
            yield existing
        return
    server = configured_server(request.config, client_port=configured_port(request.config), label="etcd_server")
    with started(server, request.config, None):
        yield server


etcd_client = fixtures.etcd_client_factory("etcd_server")
etcd_namespace = fixtures.etcd_namespace_factory("etcd_server")
etcd_clean_client = fixtures.etcd_clean_client_factory("etcd_server")
etcd_cluster = fixtures.etcd_cluster_proc(3)


@pytest.fixture
def etcd_server_factory(request: pytest.FixtureRequest) -> Iterator[fixtures.EtcdServerFactory]:
    """``etcd_server_factory(**EtcdServer options)`` -> a started server, stopped after the test."""
    factory = fixtures.EtcdServerFactory(request.config)
    try:
        yield factory
    finally:
        factory.stop_all()


# -- reporting ------------------------------------------------------------------------------


def pytest_report_header(config: pytest.Config) -> list[str]:
    """The etcd the fixtures will start, in ``etcd-env which``'s words, and its known defects."""
    urls, where = configured_endpoints(config)
    if urls is not None:
        return [f"etcd_env: existing cluster {urls} (from {where}); nothing is started"]
    binary_setting = setting(config, "etcd_binary")
    try:
        binary = resolve_binary(binary_setting[0] if binary_setting else None)
    except EtcdEnvError as error:  # said here once; the fixtures raise it in full where they are used
        return [f"etcd_env: no usable etcd ({str(error).splitlines()[0]})"]
    lines = [f"etcd_env: {binary.path} (from {binary.source}): {pin_verdict(binary)}"]
    lines += [
        f"etcd_env: known defect of etcd {binary.version}: {row.describe()}" for row in defects_of(binary.version)
    ]
    return lines


def _log_sources(item: pytest.Item) -> list[tuple[str, Any]]:
    """Every fixture value of ``item`` that can show an etcd log, by fixture name."""
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    sources: list[tuple[str, Any]] = []
    seen: set[int] = set()
    for name, value in funcargs.items():
        candidates = [value, *value.started] if isinstance(value, fixtures.EtcdServerFactory) else [value]
        for index, candidate in enumerate(candidates):
            target = candidate.server if isinstance(candidate, fixtures.EtcdNamespace) else candidate
            # A class (a test parametrized with EtcdServer itself) has log_tail too, unbound.
            if isinstance(target, type) or not callable(getattr(target, "log_tail", None)) or id(target) in seen:
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
