"""The pytest plugin's options, and the servers they describe, decided in one module.

The plugin registers the options; the public factories (``etcd_env.fixtures``) read them
here. Every error names the option the user actually gave (``--etcd-timeout``, ini
``etcd_binary``...), not the API call or environment variable underneath.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ._binary.resolve import resolve_binary, version_matches
from ._cluster import EtcdCluster
from ._common.environ import BINARY_VAR, ENDPOINTS_VAR, EXPECT_VERSION_VAR
from ._common.errors import EtcdStartTimeout, StateDirError
from ._common.paths import writable_dir
from ._existing import ExistingCluster
from ._server import EtcdServer
from ._values import port_number, timeout_seconds

_Number = TypeVar("_Number", int, float)

DEFAULT_TIMEOUT = 60.0
_LOG_NUMBERS = itertools.count()
#: The fixture name of each cluster started through the plugin, for its members' log file names.
_CLUSTER_LABELS = pytest.StashKey[dict[int, str]]()


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("etcd_env", "etcd_env: a managed etcd")
    group.addoption("--etcd-binary", dest="etcd_binary", help=f"etcd binary (default: ${BINARY_VAR}, ...)")
    group.addoption("--etcd-host", dest="etcd_host", help="address etcd listens on (default 127.0.0.1)")
    group.addoption("--etcd-port", dest="etcd_port", help="client port of etcd_server (default: a free one)")
    group.addoption(
        "--etcd-timeout",
        dest="etcd_timeout",
        help=f"seconds to wait for etcd (default {DEFAULT_TIMEOUT:g})",
    )
    group.addoption(
        "--etcd-expect-version",
        dest="etcd_expect_version",
        help=f"fail unless etcd is this version, e.g. 3.5 or 3.5.1 (default ${EXPECT_VERSION_VAR})",
    )
    group.addoption("--etcd-log-dir", dest="etcd_log_dir", help="keep every etcd's full log in this directory")
    group.addoption(
        "--etcd-endpoints",
        dest="etcd_endpoints",
        help=f"use this existing etcd (comma-separated client URLs) instead of starting one; default ${ENDPOINTS_VAR}",
    )
    parser.addini("etcd_binary", "etcd binary")
    parser.addini("etcd_host", "address etcd listens on", default="127.0.0.1")
    parser.addini("etcd_port", "client port of etcd_server")
    parser.addini("etcd_timeout", "seconds to wait for etcd to serve")
    parser.addini("etcd_expect_version", "fail unless etcd is this version")
    parser.addini("etcd_log_dir", "keep every etcd's full log in this directory")
    parser.addini("etcd_endpoints", "existing etcd client URLs, comma-separated")


def setting(config: pytest.Config, name: str) -> tuple[str, str] | None:
    """(value, where it was set) from the command line, then the ini file; None where neither sets it."""
    value = config.getoption(name, default=None)
    if value is not None and value != "":
        return str(value), f"--{name.replace('_', '-')}"
    value = config.getini(name)
    if value:
        return str(value), f"ini {name}"
    return None


def option(config: pytest.Config, name: str) -> str | None:
    found = setting(config, name)
    return found[0] if found is not None else None


def _number(config: pytest.Config, name: str, parse: Callable[[str], _Number]) -> _Number | None:
    found = setting(config, name)
    if found is None:
        return None
    value, where = found
    try:
        return parse(value)
    except ValueError as error:
        raise pytest.UsageError(f"{where}={value!r}: {error}") from None


def check_options(config: pytest.Config) -> None:
    """Every value the plugin will use, checked at configure time: a bad one is a usage error
    naming the option, before any test runs (not a 60 s wait or a traceback in a fixture)."""
    configured_port(config)
    start_timeout(config, None)
    directory = setting(config, "etcd_log_dir")
    if directory is not None:
        value, where = directory
        try:
            writable_dir(Path(value), what=f"{where}={value!r}:", fix="Give a directory you can write.")
        except StateDirError as error:
            raise pytest.UsageError(str(error)) from None


def start_timeout(config: pytest.Config, timeout: float | None) -> float:
    if timeout is not None:
        return timeout
    configured = _number(config, "etcd_timeout", timeout_seconds)
    return configured if configured is not None else DEFAULT_TIMEOUT


def configured_port(config: pytest.Config) -> int | None:
    """``--etcd-port`` / ini ``etcd_port``: the client port of ``etcd_server`` (only: two servers cannot share one)."""
    return _number(config, "etcd_port", port_number)


def _timeout_source(config: pytest.Config) -> str:
    found = setting(config, "etcd_timeout")
    return found[1] if found is not None else "--etcd-timeout"


def configured_endpoints(config: pytest.Config) -> tuple[str | None, str | None]:
    """(URLs, where they were set): command line, then ini, then ``$ETCD_ENV_ENDPOINTS``."""
    found = setting(config, "etcd_endpoints")
    if found is not None:
        return found
    if os.environ.get(ENDPOINTS_VAR, "").strip():
        return os.environ[ENDPOINTS_VAR], f"${ENDPOINTS_VAR}"
    return None, None


def _checked_binary(config: pytest.Config, binary: str | None) -> str | None:
    """The binary to use; a version the user asked for that it is not is one error naming both settings."""
    binary_setting = (binary, "the fixture's binary=") if binary else setting(config, "etcd_binary")
    expected = setting(config, "etcd_expect_version")
    if expected is None:
        return binary_setting[0] if binary_setting else None
    version, version_where = expected
    resolved = resolve_binary(binary_setting[0] if binary_setting else None)
    if not version_matches(resolved.version, version):
        if binary_setting is not None:
            fix = f"Point {binary_setting[1]} at etcd {version}"
        else:
            fix = f"Give --etcd-binary (or ini etcd_binary) an etcd {version}"
        origin = binary_setting[1] if binary_setting else resolved.source
        raise pytest.UsageError(
            f"{version_where}={version}, but {resolved.path} (from {origin}) is etcd {resolved.version}. "
            f"{fix}, or drop {version_where}."
        )
    return resolved.path


def _log_file(config: pytest.Config, label: str) -> Path | None:
    directory = option(config, "etcd_log_dir")
    if directory is None:
        return None
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    workerinput: dict[str, Any] = getattr(config, "workerinput", {})
    worker = str(workerinput.get("workerid", "main"))
    return path / f"{worker}-{label}-{os.getpid()}-{next(_LOG_NUMBERS)}.log"


def configured_server(
    config: pytest.Config,
    *,
    binary: str | None = None,
    host: str | None = None,
    client_port: int | None = None,
    label: str = "etcd",
    **options: Any,
) -> EtcdServer:
    """An unstarted :class:`EtcdServer` with the plugin's options wherever the caller gave none."""
    if options.get("log_file") is None:
        options["log_file"] = _log_file(config, label)
    return EtcdServer(
        binary=_checked_binary(config, binary),
        host=host or option(config, "etcd_host") or "127.0.0.1",
        client_port=client_port,
        **options,
    )


def configured_cluster(
    config: pytest.Config,
    members: int,
    *,
    binary: str | None = None,
    host: str | None = None,
    label: str = "etcd_cluster",
    **options: Any,
) -> EtcdCluster:
    cluster = EtcdCluster(
        members,
        binary=_checked_binary(config, binary),
        host=host or option(config, "etcd_host") or "127.0.0.1",
        **options,
    )
    config.stash.setdefault(_CLUSTER_LABELS, {})[id(cluster)] = label
    return cluster


def _keep_cluster_logs(config: pytest.Config, cluster: EtcdCluster) -> None:
    # A cluster's member logs live in its record directories, removed by stop(): copied first.
    label = config.stash.get(_CLUSTER_LABELS, {}).pop(id(cluster), "etcd_cluster")
    for member in cluster.members:
        target = _log_file(config, f"{label}-member{member.index}")
        if target is not None and member.log_path.exists():
            shutil.copyfile(member.log_path, target)


@contextlib.contextmanager
def started(
    server: EtcdServer | EtcdCluster, config: pytest.Config, timeout: float | None
) -> Iterator[EtcdServer | EtcdCluster]:
    """Start ``server`` with the plugin's timeout, stop it afterwards; a timeout names the option to raise."""
    seconds = start_timeout(config, timeout)
    try:
        server.start(timeout=seconds)
    except EtcdStartTimeout as error:
        where = "the fixture's timeout=" if timeout is not None else _timeout_source(config)
        raise EtcdStartTimeout(
            f"etcd was not healthy within {seconds:g} s ({where}). Raise {where}, "
            "or see etcd's log below for why it is stuck",
            log_tail=error.log_tail,
        ) from None
    try:
        yield server
    finally:
        if isinstance(server, EtcdCluster) and server.running:
            _keep_cluster_logs(config, server)
        server.stop()


def existing_cluster(config: pytest.Config) -> ExistingCluster | None:
    urls, source = configured_endpoints(config)
    if urls is None:
        return None
    return ExistingCluster(urls, source=source)
