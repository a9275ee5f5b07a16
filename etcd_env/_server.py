"""``EtcdServer``: one managed etcd member, a drop-in for PyTorch's class of that name."""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._binary.resolve import EtcdBinary, checked_binary
from ._client import client_environment, python_etcd_client
from ._common.paths import servers_dir, writable_dir
from ._process.command import SINGLE_MEMBER_TIMERS, MemberCommand, check_extra_args
from ._process.http import url_host
from ._process.lifecycle import StartStopContext, finish_despite_interrupts, one_start_at_a_time
from ._process.member import MemberProcess, check_local_host, retry_on_clash
from ._process.ports import PortReservation, listen_addresses, reserve_port, reserve_specific_port
from ._process.readiness import HttpHealthCheck
from ._process.registry import CreatedDir, ServerRecord, reap
from ._process.spawn import StdStream
from ._process.tls import ClientTls, TlsMaterial, generate_tls
from ._values import usable_timeout

if TYPE_CHECKING:
    import etcd

logger = logging.getLogger("etcd_env")


def new_member_name(prefix: str = "etcd-env") -> str:
    return f"{prefix}-{os.getpid()}-{secrets.token_hex(4)}"


class EtcdServer(StartStopContext):
    """A local single-member etcd on free ports, started in tens of milliseconds.

    The reference's API is kept (``EtcdServer(data_dir)``, ``start(timeout,
    num_retries, stderr)``, ``stop()``, ``get_client()``, ``get_host()``,
    ``get_port()``, ``get_endpoint()``); the keyword options are etcd_env's own.
    Constructing one has no side effects: nothing is created before ``start()``.

    ``host`` defaults to ``localhost``, as the reference reports: etcd then listens on
    127.0.0.1 and, where it can be bound, ::1 (the port is reserved on both), so a
    client reaches it whichever loopback ``localhost`` resolves to. ``client_url`` and
    ``get_client()`` use 127.0.0.1, which needs no name lookup. An explicit ``host``
    (``127.0.0.1``, ``::1``, another local address) is listened on alone.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        binary: str | os.PathLike[str] | None = None,
        host: str = "localhost",
        client_port: int | None = None,
        peer_port: int | None = None,
        log_file: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        enable_v2: bool = True,
        tls: bool = False,
        heartbeat_ms: int = SINGLE_MEMBER_TIMERS[0],
        election_ms: int = SINGLE_MEMBER_TIMERS[1],
        stop_grace: float = 5.0,
    ) -> None:
        self._data_dir_arg = Path(data_dir) if data_dir is not None else None
        self._binary_arg = binary
        self._host = host
        self._client_port_arg = client_port
        self._peer_port_arg = peer_port
        self._log_file_arg = Path(log_file) if log_file is not None else None
        self._extra_args = check_extra_args(extra_args)
        self._enable_v2 = enable_v2
        self._tls_enabled = tls
        self._client_tls: ClientTls | None = None
        self._timers = (heartbeat_ms, election_ms)
        self._stop_grace = stop_grace
        self._port = -1
        self._binary: EtcdBinary | None = None
        self._member: MemberProcess | None = None
        self._reservations: list[PortReservation] = []
        # start() and stop() from different threads: one start at a time, and a stop waits
        # for a start in progress (then stops what it started) instead of racing it.
        self._lifecycle = threading.Lock()
        self._owner_pid: int | None = None

    # -- the reference's API ---------------------------------------------------------

    def start(self, timeout: float = 60, num_retries: int = 3, stderr: StdStream = None) -> None:
        """Start etcd and return once it serves, proven ours (see ``_readiness``).

        Retries on fresh ports and a fresh name only on a clash (another process took the port
        or the name's lock), as long as ``timeout`` allows; ``num_retries=1`` turns that off.
        Whatever ends a start early, ``KeyboardInterrupt`` included, stops what it spawned.
        """
        # A deadline of nan or inf would fail deep inside (ValueError, OverflowError) with no word of the argument.
        usable_timeout(timeout, shown=f"start(timeout={timeout!r})")
        with one_start_at_a_time(self._lifecycle, self):
            self._start(timeout, num_retries, stderr)

    def stop(self) -> None:
        """Stop etcd, release its ports, remove what etcd_env created. Safe to call twice.

        Only the process that started the server stops it: in a forked child (whose
        inherited atexit hook calls this too) it does nothing at all.
        """
        if self._owner_pid is not None and self._owner_pid != os.getpid():
            return
        with self._lifecycle:
            self._stop()

    def _start(self, timeout: float, num_retries: int, stderr: StdStream) -> None:
        if self._member is not None:
            raise RuntimeError("this EtcdServer is already started; stop() it first")
        self._owner_pid = os.getpid()  # from here on, a forked child's stop() leaves it alone
        deadline = time.monotonic() + timeout
        check_local_host(self._host)
        binary = self._binary = checked_binary(self._binary_arg, needs_v2=self._enable_v2, timeout=timeout)
        reap()  # what dead owners left: their ports and names are free again before we pick ours
        material = generate_tls(self._host) if self._tls_enabled else None
        explicit_ports = self._client_port_arg is not None or self._peer_port_arg is not None
        # Absolute once, here: a chdir while etcd runs must not point stop() at another directory.
        data_dir = self._data_dir_arg.absolute() if self._data_dir_arg is not None else None
        retry_on_clash(
            lambda: self._start_once(binary, deadline, stderr, material, data_dir),
            num_retries,
            deadline,
            fresh_ports=not explicit_ports,
        )
        atexit.register(self.stop)

    def _stop(self) -> None:
        member, self._member = self._member, None
        try:
            if member is not None:
                finish_despite_interrupts(lambda: member.discard(self._stop_grace))
        finally:
            self._client_tls = None  # its files went with the record directory
            self._release_ports()
            self._owner_pid = None
            atexit.unregister(self.stop)

    def get_client(self, **kwargs: Any) -> etcd.Client:
        """A python-etcd client on this server's v2 API."""
        return python_etcd_client(self.client_urls, self._client_tls, **kwargs)

    def get_host(self) -> str:
        return self._host

    def get_port(self) -> int:
        return self._port

    def get_endpoint(self) -> str:
        return f"{self._host}:{self._port}"

    # -- etcd_env's additions --------------------------------------------------------

    @property
    def client_url(self) -> str:
        return f"{self._scheme}://{self._url_host}:{self._port}"

    @property
    def client_urls(self) -> list[str]:
        return [self.client_url]

    @property
    def tls(self) -> ClientTls | None:
        """With ``tls=True``: the CA and client certificate files (None otherwise).

        Torch's ``etcd-v2`` backend takes them as ``ca_cert``, ``ssl_cert``, ``ssl_cert_key``.
        """
        return self._client_tls

    @property
    def binary(self) -> EtcdBinary | None:
        return self._binary

    @property
    def pid(self) -> int | None:
        return self._member.pid if self._member is not None else None

    @property
    def running(self) -> bool:
        return self._member is not None and self._member.running

    @property
    def log_path(self) -> Path | None:
        return self._member.log_path if self._member is not None else None

    @property
    def data_dir(self) -> Path | None:
        return self._member.command.data_dir if self._member is not None else None

    @property
    def name(self) -> str | None:
        return self._member.command.name if self._member is not None else None

    @property
    def peer_url(self) -> str | None:
        return self._member.command.peer_url if self._member is not None else None

    @property
    def argv(self) -> list[str]:
        """The etcd command line this server runs ([] when stopped): what to paste to reproduce it."""
        return self._member.command.argv() if self._member is not None else []

    def log_tail(self, lines: int = 25) -> str:
        return self._member.log_tail(lines) if self._member is not None else ""

    def environment(self) -> dict[str, str]:
        """The variables that point a command at this server (see ``etcd-env run``)."""
        return client_environment(self.client_urls, self._client_tls)

    def __repr__(self) -> str:
        state = f"serving {self.client_url}" if self._member is not None else "stopped"
        return f"<EtcdServer {state}>"

    # -- internals -------------------------------------------------------------------

    @property
    def _url_host(self) -> str:
        return url_host(listen_addresses(self._host)[0])

    def _listen_client_urls(self, port: int) -> list[str]:
        return [f"{self._scheme}://{url_host(address)}:{port}" for address in listen_addresses(self._host)]

    def _reserve(self, wanted: int | None) -> PortReservation:
        reservation = reserve_specific_port(wanted, self._host) if wanted is not None else reserve_port(self._host)
        self._reservations.append(reservation)
        return reservation

    def _release_ports(self) -> None:
        for reservation in self._reservations:
            reservation.release()
        self._reservations = []

    @property
    def _scheme(self) -> str:
        return "https" if self._tls_enabled else "http"

    def _start_once(
        self,
        binary: EtcdBinary,
        deadline: float,
        stderr: StdStream,
        material: TlsMaterial | None,
        data_dir_arg: Path | None,
    ) -> None:
        name = new_member_name()
        record = ServerRecord.create(name, servers_dir(), deadline=deadline)
        member: MemberProcess | None = None
        try:
            client = self._reserve(self._client_port_arg)
            peer = self._reserve(self._peer_port_arg)
            self._port = client.port
            removable: list[CreatedDir] = []
            if data_dir_arg is None:
                data_dir = record.default_data_dir
            else:
                data_dir = data_dir_arg
                if not data_dir.is_dir():  # told before it exists: we die, it goes (while still empty)
                    record.watchdog.also_remove(data_dir)
                if writable_dir(data_dir, what="data_dir", fix="Pass a data_dir you can write, or none."):
                    created = CreatedDir.of(data_dir)
                    record.watchdog.pin(created.path, created.device, created.inode)
                    removable.append(created)
            if self._log_file_arg is not None:
                writable_dir(self._log_file_arg.parent, what="log_file's directory", fix="Pass a writable log_file.")
            client_url = f"{self._scheme}://{self._url_host}:{client.port}"
            peer_url = f"{self._scheme}://{self._url_host}:{peer.port}"
            written = material.write(record.root) if material is not None else None
            command = MemberCommand.single_member(
                binary,
                name,
                data_dir,
                client_url,
                peer_url,
                timers=self._timers,
                enable_v2=self._enable_v2,
                tls=written.server if written is not None else None,
                extra_args=self._extra_args,
                listen_client_urls=self._listen_client_urls(client.port),
            )
            member = MemberProcess(command, record, removable=removable, stderr=stderr, log_path=self._log_file_arg)
            member.launch()
            context = written.client.ssl_context() if written is not None else None
            member.wait_ready(HttpHealthCheck(client_url, name, v2=self._enable_v2, ssl_context=context), deadline)
            self._member = member
            self._client_tls = written.client if written is not None else None
        except BaseException:
            finish_despite_interrupts(lambda: self._undo_attempt(member, record))
            raise
        logger.info("etcd %s serving %s (log %s)", binary.version, self.client_url, member.log_path)

    def _undo_attempt(self, member: MemberProcess | None, record: ServerRecord) -> None:
        self._member, self._client_tls = None, None
        if member is not None:
            member.discard(self._stop_grace)
        else:
            record.remove()
        self._release_ports()
        self._port = -1
