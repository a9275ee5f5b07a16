"""Fixtures for PyTorch elastic's etcd rendezvous against a real etcd.

Which server the tests talk to is chosen by ``$ETCD_ENV_RDZV_SERVER``:

- ``shared`` (default): the pytest plugin's ``etcd_server``, i.e. the nox session's
  managed etcd (``ETCD_ENV_ENDPOINTS``) or one started for this pytest session;
- ``etcd_env``: an ``etcd_env.EtcdServer()`` per module, as torch's own tests start
  theirs in ``setUpClass``;
- ``torch``: torch's reference ``EtcdServer()`` per module, for the wall-time comparison.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.request import urlopen

import etcd
import pytest

import etcd_env
from etcd_env._binary.defects import DIR_TTL_REFRESH

MODES = ("shared", "etcd_env", "torch")
#: torch's rendezvous code keeps a run's state here (etcd-v2 backend; v1 handler's default prefix).
TORCH_RUN_PATHS = ("/torch/elastic/rendezvous/{run_id}", "/torchelastic/p2p/run_{run_id}")


def server_mode() -> str:
    mode = os.environ.get("ETCD_ENV_RDZV_SERVER", "shared")
    if mode not in MODES:
        raise pytest.UsageError(f"ETCD_ENV_RDZV_SERVER={mode!r}: expected one of {', '.join(MODES)}")
    return mode


def etcd_version(endpoint: str) -> str:
    """The server's version, from its own GET /version (an existing cluster has no binary to ask)."""
    with urlopen(f"http://{endpoint}/version", timeout=10) as response:
        return str(json.loads(response.read())["etcdserver"])


@pytest.fixture(scope="module")
def rdzv_server(request: pytest.FixtureRequest) -> Iterator[Any]:
    mode = server_mode()
    if mode == "shared":
        yield request.getfixturevalue("etcd_server")
        return
    if mode == "etcd_env":
        server: Any = etcd_env.EtcdServer()
    else:
        # torch is imported only here: this conftest must load where torch is absent.
        from torch.distributed.elastic.rendezvous.etcd_server import EtcdServer as TorchEtcdServer  # noqa: PLC0415

        # The reference searches $TORCHELASTIC_ETCD_BINARY_PATH, then <torch>/bin/etcd, then PATH:
        # hand it the same etcd etcd_env resolves, so only the server class differs.
        os.environ.setdefault("TORCHELASTIC_ETCD_BINARY_PATH", etcd_env.resolve_binary().path)
        server = TorchEtcdServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class RunIds:
    """Fresh rendezvous run ids for one test: torch refuses to reuse a closed one on a server."""

    server: Any

    def __post_init__(self) -> None:
        self.issued: list[str] = []

    def new(self, label: str = "run") -> str:
        run_id = f"{label}-{uuid.uuid4().hex[:12]}"
        self.issued.append(run_id)
        return run_id

    def cleanup(self) -> None:
        client = self.server.get_client()
        for run_id in self.issued:
            for path in TORCH_RUN_PATHS:
                with contextlib.suppress(etcd.EtcdKeyNotFound):
                    client.delete(path.format(run_id=run_id), recursive=True, dir=True)


@pytest.fixture
def run_ids(rdzv_server: Any) -> Iterator[RunIds]:
    ids = RunIds(rdzv_server)
    yield ids
    ids.cleanup()


def lease_refresh_of_dirs_fails(version: str) -> bool:
    """etcd 3.5 refuses to refresh a TTL'd v2 directory ("Not a file", etcd-io/etcd#13589); 3.4 accepts it.

    Read from etcd_env's known-defects table, so the tests and what `etcd-env which` says cannot drift.
    """
    return DIR_TTL_REFRESH.affects(version)


class LeaseFailures:
    """Exceptions raised in torch's v1 lease-refresh threads (``lease_worker``) during one test."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()

    def hook(self, args: threading.ExceptHookArgs) -> None:
        thread_name = args.thread.name if args.thread is not None else ""
        if "lease_worker" not in thread_name or args.exc_value is None:
            raise AssertionError(f"unexpected exception in thread {thread_name}: {args.exc_value!r}")
        with self.lock:
            self.errors.append(args.exc_value)

    def check(self, version: str) -> None:
        """Exactly the known failure on 3.5 (if any lease thread ran that long), none on 3.4."""
        with self.lock:
            errors = list(self.errors)
        if not lease_refresh_of_dirs_fails(version):
            assert errors == [], f"etcd {version}: lease refresh should work, got {errors!r}"
            return
        for error in errors:
            assert "Not a file" in str(error), f"etcd {version}: unexpected lease failure {error!r}"


@pytest.fixture
def lease_failures(monkeypatch: pytest.MonkeyPatch, rdzv_server: Any) -> Iterator[LeaseFailures]:
    """Handles, not hides, the v1 handler's lease-refresh failure: collected, then checked by version."""
    failures = LeaseFailures()
    monkeypatch.setattr(threading, "excepthook", failures.hook)
    yield failures
    failures.check(etcd_version(rdzv_server.get_endpoint()))


# -- the version matrix, printed at the end of the run -------------------------------------

MATRIX_KEY = pytest.StashKey[list[dict[str, str]]]()


@pytest.fixture
def matrix_rows(request: pytest.FixtureRequest) -> list[dict[str, str]]:
    return request.config.stash.setdefault(MATRIX_KEY, [])


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    rows = config.stash.get(MATRIX_KEY, [])
    if not rows:
        return
    terminalreporter.write_sep("=", "etcd version matrix (torch elastic rendezvous)")
    columns = list(rows[0])
    terminalreporter.write_line(" | ".join(columns))
    for row in rows:
        terminalreporter.write_line(" | ".join(row.get(column, "") for column in columns))
