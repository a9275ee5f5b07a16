"""The v2 directory-TTL refresh torch's v1 etcd rendezvous needs, on whichever etcd line serves.

On etcd 3.4 both tests pass. On 3.5 both are strict xfails citing etcd-io/etcd#13589 (the
first row of etcd_env's known-defects table, which decides where they are expected to
fail): an etcd that fixes the defect turns them red (XPASS(strict)), and so does a 3.4
that gains it, so the table has to follow. Run them on a chosen line with
``nox -s rendezvous_tests`` (the default etcd) and ``nox -s rendezvous_tests-3.4``.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("torch", reason="torch is not installed: run `nox -s rendezvous_tests`, which installs it")

import etcd
from torch.distributed.elastic.rendezvous import RendezvousParameters
from torch.distributed.elastic.rendezvous.etcd_rendezvous import create_rdzv_handler

from etcd_env._binary.defects import DIR_TTL_REFRESH

from .conftest import LeaseFailures, RunIds, etcd_version

#: Short enough to watch two renewals, long enough that a loaded machine's scheduling delay
#: (the lease thread renews every TTL/2) does not let the directory expire between them.
LEASE_TTL = 4


@pytest.fixture
def dir_ttl_line(request: pytest.FixtureRequest, rdzv_server: Any) -> str:
    """The server's version; on a version the table says has the defect, a strict xfail citing it."""
    version = etcd_version(rdzv_server.get_endpoint())
    if DIR_TTL_REFRESH.affects(version):
        request.applymarker(
            pytest.mark.xfail(
                strict=True,
                raises=etcd.EtcdException,
                reason=f"etcd {version}: {DIR_TTL_REFRESH.defect}; {DIR_TTL_REFRESH.reference}",
            )
        )
    return version


@pytest.fixture
def scratch_dir(rdzv_server: Any) -> Iterator[str]:
    path = f"/etcd-env-dir-ttl/{uuid.uuid4().hex[:12]}"
    yield path
    with contextlib.suppress(etcd.EtcdKeyNotFound):  # on 3.5 its TTL ran out first
        rdzv_server.get_client().delete(path, dir=True, recursive=True)


def test_refreshing_a_v2_directory_ttl(rdzv_server: Any, dir_ttl_line: str, scratch_dir: str) -> None:
    client = rdzv_server.get_client()
    client.write(scratch_dir, None, dir=True, ttl=60)
    client.refresh(scratch_dir, ttl=600)  # etcd 3.5: EtcdException "Raft Internal Error ... Not a file"
    refreshed = client.read(scratch_dir)
    assert refreshed.dir and refreshed.ttl is not None and refreshed.ttl > 60, refreshed


def test_torch_v1_handler_renews_a_directory_lease(
    rdzv_server: Any, run_ids: RunIds, dir_ttl_line: str, scratch_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = LeaseFailures()
    monkeypatch.setattr(threading, "excepthook", failures.hook)
    params = RendezvousParameters(
        backend="etcd",
        endpoint=rdzv_server.get_endpoint(),
        run_id=run_ids.new("dir-ttl"),
        min_nodes=1,
        max_nodes=1,
        local_addr="127.0.0.1",
    )
    # torch's own renewal code, the one its rendezvous runs for <prefix>/run_<id> (TTL 7200 s, renewed
    # every hour): here on a directory with a TTL short enough to see it lapse without renewal.
    rendezvous = create_rdzv_handler(params)._rdzv_impl
    client = rdzv_server.get_client()
    client.write(scratch_dir, None, dir=True, ttl=LEASE_TTL)
    stop = rendezvous.setup_lease_renewal(scratch_dir, ttl=LEASE_TTL)
    try:
        time.sleep(2 * LEASE_TTL + 1)
    finally:
        stop.set()
    if failures.errors:  # etcd 3.5: the lease threads died at once; their error is the test's outcome
        raise failures.errors[0]
    assert client.read(scratch_dir).dir, f"the directory outlived {2 * LEASE_TTL + 1} s only through renewal"
