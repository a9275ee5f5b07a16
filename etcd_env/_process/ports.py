"""Reserving TCP ports across processes with filelock.

A reservation is a held, non-blocking ``flock`` on ``ports/port-N.lock`` in the
per-user state directory. The lock is per port number, not per address: a port
reserved for ``localhost`` is checked free on every loopback etcd will listen on
(127.0.0.1, and ::1 where it can be bound), since a client resolving ``localhost``
may reach either. Holding it is what makes a port ours: every etcd_env
process on the machine skips a port whose lock is held, and the kernel drops the
lock when its holder dies, so a crash never strands a port. Ports are drawn from
outside the kernel's ephemeral range, so that no outgoing connection or
``bind(0)`` elsewhere can be handed one of them between our probe and etcd's bind.
"""

from __future__ import annotations

import functools
import os
import random
import socket
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from filelock import Timeout, UnixFileLock

from .._common.environ import PORT_RANGE_VAR
from .._common.errors import PortBusyError, PortExhaustedError, SettingError
from .._common.locks import kernel_lock
from .._common.paths import ports_dir

_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LINUX_DEFAULT_EPHEMERAL = (32768, 60999)
_LOWEST_PORT = 10000
_ATTEMPTS = 256
#: The name torch's EtcdServer reports as its host; etcd_env serves it on every usable loopback.
LOCALHOST = "localhost"


@functools.cache
def ipv6_loopback_usable() -> bool:
    """Whether ``::1`` can be bound here (IPv6 may be disabled in a container or kernel)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def listen_addresses(host: str) -> tuple[str, ...]:
    """The addresses etcd listens on for ``host``: both loopbacks for ``localhost``, else ``host`` itself.

    ``localhost`` resolves to 127.0.0.1 on some machines and to ::1 first on others; listening on
    both makes it work whichever a client picks. The IPv4 loopback comes first: clients are given it.
    """
    if host == LOCALHOST:
        return ("127.0.0.1", "::1") if ipv6_loopback_usable() else ("127.0.0.1",)
    return (host,)


def ephemeral_range() -> tuple[int, int]:
    try:
        low, high = _EPHEMERAL_RANGE_FILE.read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return _LINUX_DEFAULT_EPHEMERAL


def candidate_ports() -> range:
    """The ports etcd_env picks from: ``$ETCD_ENV_PORT_RANGE`` or the widest block outside the ephemeral range."""
    configured = os.environ.get(PORT_RANGE_VAR)
    if configured:
        accepted = "give LOW-HIGH with 1024 <= LOW <= HIGH <= 65535, e.g. 20000-29999"
        try:
            low_text, high_text = configured.split("-")
            low, high = int(low_text), int(high_text)
        except ValueError:
            raise SettingError(f"{PORT_RANGE_VAR}={configured!r} is not a port range: {accepted}") from None
        if not 1024 <= low <= high <= 65535:
            raise SettingError(f"{PORT_RANGE_VAR}={configured!r} is not a usable port range: {accepted}")
        return range(low, high + 1)
    ephemeral_low, ephemeral_high = ephemeral_range()
    below = range(_LOWEST_PORT, max(_LOWEST_PORT, ephemeral_low))
    above = range(min(ephemeral_high + 1, 65536), 65536)
    return below if len(below) >= len(above) else above


class PortReservation:
    """One reserved port: held until :meth:`release`, or until the process dies."""

    def __init__(self, port: int, lock: UnixFileLock) -> None:
        self.port = port
        self._lock = lock

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release(force=True)

    def __enter__(self) -> PortReservation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"PortReservation(port={self.port}, held={self.held})"


def _lock_for(port: int, lock_dir: Path) -> UnixFileLock:
    return kernel_lock(lock_dir / f"port-{port}.lock")


def _bindable_on(address: str, port: int) -> bool:
    # SO_REUSEADDR as etcd (Go) sets it, so a port in TIME_WAIT counts as free, as it is for etcd.
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def _bindable(host: str, port: int) -> bool:
    return all(_bindable_on(address, port) for address in listen_addresses(host))


def _try_reserve(port: int, usable: Callable[[int], bool], lock_dir: Path) -> PortReservation | None:
    lock = _lock_for(port, lock_dir)
    try:
        lock.acquire()
    except Timeout:
        return None
    if not usable(port):
        lock.release(force=True)
        return None
    return PortReservation(port, lock)


def reserve_port_where(usable: Callable[[int], bool], where: str, *, lock_dir: Path | None = None) -> PortReservation:
    """Reserve a port no other etcd_env process holds and for which ``usable(port)`` is true.

    ``usable`` is the caller's own bind test (``find_free_port`` binds the socket it returns).
    """
    directory = lock_dir or ports_dir()
    candidates = candidate_ports()
    chooser = random.SystemRandom()
    for _ in range(_ATTEMPTS):
        reservation = _try_reserve(chooser.choice(candidates), usable, directory)
        if reservation is not None:
            return reservation
    raise PortExhaustedError(
        f"no free port on {where} after {_ATTEMPTS} tries in {candidates.start}-{candidates.stop - 1}. "
        f"Free some ports, or set {PORT_RANGE_VAR}=LOW-HIGH to a range with room."
    )


def reserve_port(host: str = "127.0.0.1", *, lock_dir: Path | None = None) -> PortReservation:
    """Reserve a free port on ``host`` (on both loopbacks for ``localhost``) that no other etcd_env process holds."""
    where = " and ".join(listen_addresses(host))
    return reserve_port_where(lambda port: _bindable(host, port), where, lock_dir=lock_dir)


def reserve_specific_port(port: int, host: str = "127.0.0.1", *, lock_dir: Path | None = None) -> PortReservation:
    """Reserve exactly ``port``: the caller asked for it, so a clash is an error, not a reason to pick another."""
    directory = lock_dir or ports_dir()
    lock = _lock_for(port, directory)
    try:
        lock.acquire()
    except Timeout:
        raise PortBusyError(
            f"port {port} is reserved by another etcd_env server on this machine. "
            "Ask for another port, or leave the port out to let etcd_env choose a free one."
        ) from None
    if not _bindable(host, port):
        lock.release(force=True)
        raise PortBusyError(
            f"port {port} on {' and '.join(listen_addresses(host))} is already in use by another program. "
            "Stop that program, ask for another port, or leave the port out to let etcd_env choose."
        )
    return PortReservation(port, lock)


def reserve_ports(count: int, host: str = "127.0.0.1", *, lock_dir: Path | None = None) -> list[PortReservation]:
    taken: list[PortReservation] = []
    try:
        for _ in range(count):
            taken.append(reserve_port(host, lock_dir=lock_dir))
    except BaseException:
        for reservation in taken:
            reservation.release()
        raise
    return taken


def port_is_reserved(port: int, *, lock_dir: Path | None = None) -> bool:
    """Whether some live process holds the reservation for ``port``."""
    lock = _lock_for(port, lock_dir or ports_dir())
    try:
        lock.acquire()
    except Timeout:
        return True
    lock.release(force=True)
    return False
