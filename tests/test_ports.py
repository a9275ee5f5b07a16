"""Port reservations across processes."""

from __future__ import annotations

import inspect
import os
import signal
import socket
from pathlib import Path

import pytest
from filelock import UnixFileLock

from etcd_env import PortBusyError, reserve_port, reserve_specific_port
from etcd_env._common.locks import LOCK_OPTIONS, kernel_lock
from etcd_env._process.ports import candidate_ports, ephemeral_range, port_is_reserved

from .conftest import run_python, wait_until


def test_ports_come_from_outside_the_ephemeral_range(state_dir: Path) -> None:
    low, high = ephemeral_range()
    for _ in range(20):
        with reserve_port() as reservation:
            assert not low <= reservation.port <= high
            assert reservation.port in candidate_ports()


def test_lock_dir_is_private(state_dir: Path) -> None:
    with reserve_port():
        assert (state_dir / "ports").stat().st_mode & 0o777 == 0o700
        assert state_dir.stat().st_mode & 0o777 == 0o700


def test_soft_lock_fallback_is_refused(tmp_path: Path) -> None:
    if "fallback_to_soft" in inspect.signature(UnixFileLock.__init__).parameters:
        assert LOCK_OPTIONS["fallback_to_soft"] is False
        assert kernel_lock(tmp_path / "x.lock").fallback_to_soft is False


def test_a_reservation_excludes_other_processes_until_released(state_dir: Path) -> None:
    reservation = reserve_port()
    probe = f"""
        from etcd_env import reserve_specific_port, PortBusyError
        try:
            reserve_specific_port({reservation.port})
        except PortBusyError as error:
            print("busy:", error)
        else:
            print("free")
    """
    out, _ = run_python(probe).communicate(timeout=30)
    assert out.startswith("busy:") and "reserved by another etcd_env server" in out
    reservation.release()
    out, _ = run_python(probe).communicate(timeout=30)
    assert out.strip() == "free"


def test_the_kernel_frees_a_dead_holders_reservation(state_dir: Path) -> None:
    holder = run_python(
        """
        import os, signal, sys
        from etcd_env import reserve_port
        r = reserve_port()
        print(r.port, flush=True)
        sys.stdin.read()
        """,
        stdin=__import__("subprocess").PIPE,
    )
    assert holder.stdout is not None
    port = int(holder.stdout.readline())
    assert port_is_reserved(port)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    wait_until(lambda: not port_is_reserved(port), 2.0, "the reservation should be freed with its holder")


def test_explicit_port_held_by_a_foreign_listener(state_dir: Path) -> None:
    with socket.socket() as foreign:
        # A port the kernel hands out is one no other test can reserve meanwhile.
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        port = foreign.getsockname()[1]
        with pytest.raises(PortBusyError, match="in use by another program"):
            reserve_specific_port(port)
    assert not port_is_reserved(port), "a refused reservation must not stay held"
