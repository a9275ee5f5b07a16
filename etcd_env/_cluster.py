"""``EtcdCluster``: N local etcd members on reserved ports, with fault controls for tests.

Each member is a :class:`MemberProcess` with its own record directory, watchdog
and death signal, exactly as a lone :class:`EtcdServer`, so a cluster leaves
nothing behind for the same reasons a server does. The cluster adds what only a
group has: the shared ``--initial-cluster``, a parallel start, a leader, and
stopping, killing, pausing and restarting one member while the others run.
"""

from __future__ import annotations

import atexit
import http.client
import logging
import os
import signal
import ssl
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._binary.resolve import EtcdBinary, checked_binary
from ._client import client_environment, python_etcd_client
from ._common.errors import ClusterUnavailableError, EtcdStartError, EtcdStartTimeout
from ._common.paths import servers_dir
from ._process.command import CLUSTER_TIMERS, MemberCommand, check_extra_args
from ._process.http import connect, url_host
from ._process.lifecycle import StartStopContext, finish_despite_interrupts, one_start_at_a_time
from ._process.member import MemberProcess, check_local_host, retry_on_clash
from ._process.ports import PortReservation, reserve_port
from ._process.readiness import HttpHealthCheck
from ._process.registry import ServerRecord, reap
from ._process.spawn import StdStream
from ._process.status import member_status
from ._process.tls import ClientTls, TlsMaterial, generate_tls
from ._server import new_member_name
from ._values import usable_timeout

if TYPE_CHECKING:
    import etcd

logger = logging.getLogger("etcd_env")

_LOG_MARKER = "\n--- last lines of etcd's log ---\n"


@dataclass(frozen=True)
class MemberInfo:
    """A snapshot of one member, for tests and error messages."""

    index: int
    name: str
    client_url: str
    peer_url: str
    pid: int | None
    running: bool
    paused: bool
    data_dir: Path
    log_path: Path


class EtcdCluster(StartStopContext):
    """A local etcd cluster of ``members`` members (default 3), every port reserved.

    ``start()`` launches all members at once and returns when every member is
    healthy and a leader is elected. Constructing one has no side effects.
    Member indices run from 0 to ``members - 1`` and stay fixed for the cluster's life.
    """

    def __init__(
        self,
        members: int = 3,
        *,
        binary: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        tls: bool = False,
        enable_v2: bool = True,
        heartbeat_ms: int = CLUSTER_TIMERS[0],
        election_ms: int = CLUSTER_TIMERS[1],
        extra_args: Sequence[str] = (),
        stop_grace: float = 5.0,
    ) -> None:
        if members < 1:
            raise ValueError(f"a cluster needs at least one member, not {members}")
        self._size = members
        self._binary_arg = binary
        self._host = host
        self._tls_enabled = tls
        self._enable_v2 = enable_v2
        self._timers = (heartbeat_ms, election_ms)
        self._extra_args = check_extra_args(extra_args)
        self._stop_grace = stop_grace
        self._binary: EtcdBinary | None = None
        self._members: list[MemberProcess] = []
        self._paused: set[int] = set()
        self._client_tls: list[ClientTls] = []
        self._ssl_contexts: list[ssl.SSLContext] = []
        self._reservations: list[PortReservation] = []
        # As EtcdServer: one start at a time, and a stop() waits for a start in progress
        # (then stops what it started) instead of racing it.
        self._lifecycle = threading.Lock()
        self._owner_pid: int | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self, timeout: float = 60, num_retries: int = 3, stderr: StdStream = None) -> None:
        """Start every member; return once all are healthy and one leads.

        Retries on fresh ports only on a clash, as :meth:`EtcdServer.start` does. A ``stop()``
        from another thread waits for a start in progress, then stops what it started.
        """
        # A deadline of nan or inf would fail deep inside (ValueError, OverflowError) with no word of the argument.
        usable_timeout(timeout, shown=f"start(timeout={timeout!r})")
        with one_start_at_a_time(self._lifecycle, self):
            self._start(timeout, num_retries, stderr)

    def _start(self, timeout: float, num_retries: int, stderr: StdStream) -> None:
        if self._members:
            raise RuntimeError("this EtcdCluster is already started; stop() it first")
        self._owner_pid = os.getpid()  # from here on, a forked child's stop() leaves it alone
        deadline = time.monotonic() + timeout
        check_local_host(self._host)
        binary = self._binary = checked_binary(self._binary_arg, needs_v2=self._enable_v2, timeout=timeout)
        reap()  # what dead owners left: their ports and names are free again before we pick ours
        material = generate_tls(self._host) if self._tls_enabled else None
        retry_on_clash(lambda: self._start_once(binary, material, deadline, stderr), num_retries, deadline)
        atexit.register(self.stop)

    def stop(self) -> None:
        """Stop every member, remove everything the cluster created, release its ports. Safe to call twice.

        One member failing to stop does not spare the others: each is stopped and removed,
        then the first error is raised. In a forked child this does nothing at all.
        """
        if self._owner_pid is not None and self._owner_pid != os.getpid():
            return
        with self._lifecycle:
            self._stop()

    def _stop(self) -> None:
        members, self._members = self._members, []
        self._paused = set()
        try:
            finish_despite_interrupts(lambda: _discard_all(members, self._stop_grace))
        finally:
            self._client_tls, self._ssl_contexts = [], []
            self._release_ports()
            self._owner_pid = None
            atexit.unregister(self.stop)

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until every running, unpaused member is healthy and a leader exists."""
        deadline = time.monotonic() + timeout
        for index in self._live_indices():
            self._wait_member(index, deadline)
        self.leader(timeout=max(0.0, deadline - time.monotonic()))

    # -- fault controls --------------------------------------------------------------

    def stop_member(self, index: int, grace: float | None = None) -> None:
        """Stop member ``index`` cleanly (SIGTERM; a leader hands over first). Its data stays."""
        member = self._member(index)
        self._unpause(index)
        member.terminate(self._stop_grace if grace is None else grace)

    def kill_member(self, index: int) -> None:
        """SIGKILL member ``index``: a crash. Its data stays, for :meth:`restart_member`."""
        self._member(index).kill()
        self._paused.discard(index)

    def restart_member(self, index: int, *, timeout: float = 60, wait: bool = True) -> None:
        """Start member ``index`` again on its ports and data; it rejoins with what it had.

        A running member is stopped first. With ``wait`` (the default), return once it
        is healthy and the cluster has a leader; a member cannot be healthy while the
        cluster lacks a quorum, so pass ``wait=False`` to restart members one by one
        and then call :meth:`wait_ready`.
        """
        member = self._member(index)
        deadline = time.monotonic() + timeout
        if member.running:
            self.stop_member(index)
        # etcd ignores --initial-cluster* once its data dir holds a WAL: the same argv rejoins.
        member.launch()
        if wait:
            self._wait_member(index, deadline)
            self.leader(timeout=max(0.0, deadline - time.monotonic()))

    def pause_member(self, index: int) -> None:
        """SIGSTOP member ``index``: it stays connected but answers nothing (a hung node)."""
        member = self._member(index)
        if not member.running:
            raise RuntimeError(f"member {index} is not running; restart_member({index}) first")
        member.signal(signal.SIGSTOP)
        self._paused.add(index)

    def resume_member(self, index: int) -> None:
        """SIGCONT member ``index`` after :meth:`pause_member`."""
        self._member(index)
        self._unpause(index)

    def leader(self, timeout: float = 5.0) -> int:
        """The index of the member that leads, waiting up to ``timeout`` seconds for one.

        Raises :class:`ClusterUnavailableError` when no running member names itself
        leader in time, e.g. while a quorum is lost.
        """
        self._require_started()
        deadline = time.monotonic() + timeout
        while True:
            best: tuple[int, int] | None = None
            for index in self._live_indices():
                remaining = max(0.05, min(0.5, deadline - time.monotonic()))
                try:
                    status = member_status(self._client_url(index), timeout=remaining, ssl_context=self._ssl(index))
                except (OSError, ValueError):
                    continue  # down or busy: another member may still answer
                # After a partition heals, an old leader can believe itself leader for a moment;
                # the higher term is the real one.
                if status.is_leader and (best is None or status.raft_term > best[0]):
                    best = (status.raft_term, index)
            if best is not None:
                return best[1]
            if time.monotonic() >= deadline:
                live = self._live_indices()
                raise ClusterUnavailableError(
                    f"no leader in the {self._size}-member cluster within {timeout:g}s: "
                    f"{len(live)} member(s) running and unpaused ({live}), and a leader needs "
                    f"{self._size // 2 + 1}. Restart or resume members, or wait longer."
                )
            time.sleep(0.01)

    # -- what clients use ------------------------------------------------------------

    @property
    def size(self) -> int:
        return self._size

    @property
    def client_urls(self) -> list[str]:
        return [self._client_url(index) for index in range(len(self._members))]

    @property
    def client_url(self) -> str:
        return self._client_url(0)

    @property
    def tls(self) -> ClientTls | None:
        """The CA and client certificate files when ``tls=True`` (None otherwise)."""
        return self._client_tls[0] if self._client_tls else None

    def get_client(self, **kwargs: Any) -> etcd.Client:
        """A python-etcd v2 client that knows every member and moves on when one is down."""
        return python_etcd_client(self.client_urls, self.tls, **kwargs)

    def environment(self) -> dict[str, str]:
        """The variables that point a command at every member (see ``etcd-env run --members``)."""
        return client_environment(self.client_urls, self.tls)

    def get_host(self) -> str:
        return self._host

    def get_port(self) -> int:
        """Member 0's client port (the reference API has room for one)."""
        port = urlsplit(self.client_url).port
        if port is None:  # every member's URL is built with its reserved port
            raise RuntimeError(f"no port in {self.client_url}")
        return port

    def get_endpoint(self) -> str:
        return f"{self._host}:{self.get_port()}"

    @property
    def binary(self) -> EtcdBinary | None:
        return self._binary

    @property
    def members(self) -> list[MemberInfo]:
        return [self.member(index) for index in range(len(self._members))]

    def member(self, index: int) -> MemberInfo:
        member = self._member(index)
        return MemberInfo(
            index=index,
            name=member.command.name,
            client_url=member.command.client_url,
            peer_url=member.command.peer_url,
            pid=member.pid,
            running=member.running,
            paused=index in self._paused,
            data_dir=member.command.data_dir,
            log_path=member.log_path,
        )

    @property
    def pids(self) -> list[int | None]:
        return [member.pid for member in self._members]

    @property
    def running(self) -> bool:
        """Whether the cluster is started and every member's process is alive."""
        return bool(self._members) and all(member.running for member in self._members)

    def log_tail(self, lines: int = 25, *, member: int | None = None) -> str:
        """The last ``lines`` of one member's log, or of every member's, each under a heading.

        Same call shape as :meth:`EtcdServer.log_tail`, so the pytest plugin attaches a
        cluster's logs to a failing test's report as it does a server's.
        """
        if member is not None:
            return self._member(member).log_tail(lines)
        return "\n".join(
            f"--- member {index} ({process.command.name}) ---\n{process.log_tail(lines)}"
            for index, process in enumerate(self._members)
        )

    def __repr__(self) -> str:
        state = f"serving {','.join(self.client_urls)}" if self._members else "stopped"
        return f"<EtcdCluster of {self._size} {state}>"

    # -- internals -------------------------------------------------------------------

    @property
    def _url_host(self) -> str:
        return url_host(self._host)

    @property
    def _scheme(self) -> str:
        return "https" if self._tls_enabled else "http"

    def _require_started(self) -> None:
        if not self._members:
            raise RuntimeError("this EtcdCluster is not started; call start() or use it as a context manager")

    def _member(self, index: int) -> MemberProcess:
        self._require_started()
        if not 0 <= index < len(self._members):
            raise IndexError(f"no member {index}: this cluster has members 0 to {len(self._members) - 1}")
        return self._members[index]

    def _client_url(self, index: int) -> str:
        return self._member(index).command.client_url

    def _ssl(self, index: int) -> ssl.SSLContext | None:
        return self._ssl_contexts[index] if self._ssl_contexts else None

    def _live_indices(self) -> list[int]:
        return [i for i, member in enumerate(self._members) if member.running and i not in self._paused]

    def _unpause(self, index: int) -> None:
        if index in self._paused:
            self._members[index].signal(signal.SIGCONT)
            self._paused.discard(index)

    def _check(self, member: MemberProcess, index: int) -> HttpHealthCheck:
        return HttpHealthCheck(
            member.command.client_url, member.command.name, v2=self._enable_v2, ssl_context=self._ssl(index)
        )

    def _wait_member(self, index: int, deadline: float) -> None:
        member = self._member(index)
        try:
            member.wait_ready(self._check(member, index), deadline)
        except EtcdStartError as error:
            raise _named(error, index, member.command.name) from error

    def _release_ports(self) -> None:
        for reservation in self._reservations:
            reservation.release()
        self._reservations = []

    def _start_once(self, binary: EtcdBinary, material: TlsMaterial | None, deadline: float, stderr: StdStream) -> None:
        token = new_member_name("etcd-env-cluster")
        records: list[ServerRecord] = []
        members: list[MemberProcess] = []
        client_tls: list[ClientTls] = []
        try:
            for index in range(self._size):
                records.append(ServerRecord.create(f"{token}-m{index}", servers_dir(), deadline=deadline))
            ports = [(self._reserve(), self._reserve()) for _ in range(self._size)]
            peer_urls = [f"{self._scheme}://{self._url_host}:{peer.port}" for _, peer in ports]
            initial_cluster = ",".join(f"{record.name}={url}" for record, url in zip(records, peer_urls, strict=True))
            for index, (record, (client, _)) in enumerate(zip(records, ports, strict=True)):
                written = material.write(record.root) if material is not None else None
                if written is not None:
                    client_tls.append(written.client)
                command = MemberCommand(
                    binary=binary,
                    name=record.name,
                    data_dir=record.default_data_dir,
                    client_url=f"{self._scheme}://{self._url_host}:{client.port}",
                    peer_url=peer_urls[index],
                    initial_cluster=initial_cluster,
                    cluster_token=token,
                    heartbeat_ms=self._timers[0],
                    election_ms=self._timers[1],
                    enable_v2=self._enable_v2,
                    tls=written.server if written is not None else None,
                    extra_args=self._extra_args,
                )
                members.append(
                    MemberProcess(
                        command, record, removable=[], stderr=stderr, info={"cluster": token, "member_index": index}
                    )
                )
            self._members, self._client_tls = members, client_tls
            self._ssl_contexts = [files.ssl_context() for files in client_tls]
            # Each member is launched once the previous one serves its peer port, then all are
            # awaited together. A new member first asks every peer whether it already belongs to
            # a cluster, with a 1 s timeout; a peer whose port is bound but not yet served holds
            # that question the whole second. Launched all at once, 3 members stalled 1-2 s in
            # 16 of 30 starts here (median 1.1 s); launched this way, none of 30 (README: "Two design decisions").
            for index, member in enumerate(members):
                member.launch()
                if index < len(members) - 1:
                    _wait_peer_served(member, self._ssl(index), deadline)
            self._wait_all_ready(deadline)
            self.leader(timeout=max(0.05, deadline - time.monotonic()))
        except BaseException:
            finish_despite_interrupts(lambda: self._undo_attempt(members, records))
            raise
        logger.info("etcd %s cluster of %d serving %s", binary.version, self._size, ",".join(self.client_urls))

    def _undo_attempt(self, members: list[MemberProcess], records: list[ServerRecord]) -> None:
        self._members, self._client_tls, self._ssl_contexts, self._paused = [], [], [], set()
        try:
            _discard_all(members, self._stop_grace)
        finally:
            for record in records[len(members) :]:
                record.remove()
            self._release_ports()

    def _wait_all_ready(self, deadline: float) -> None:
        with ThreadPoolExecutor(max_workers=self._size, thread_name_prefix="etcd-env-ready") as pool:
            futures = {pool.submit(self._wait_member, index, deadline): index for index in range(self._size)}
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            errors: list[BaseException] = [error for future in done if (error := future.exception()) is not None]
            if errors:
                # The others' waits end as soon as their processes are gone.
                for member in self._members:
                    member.signal(signal.SIGKILL)
        if errors:
            # A member that exited says why; a timeout elsewhere is usually its consequence.
            errors.sort(key=lambda error: isinstance(error, EtcdStartTimeout))
            raise errors[0]

    def _reserve(self) -> PortReservation:
        reservation = reserve_port(self._host)
        self._reservations.append(reservation)
        return reservation


def _discard_all(members: list[MemberProcess], grace: float) -> None:
    """Kill and remove every member, even when one fails; then raise the first error."""
    errors: list[BaseException] = []
    # SIGKILL, not SIGTERM: the data is thrown away, and a clean exit costs a cluster
    # member its request timeout (5.5 s measured with all stopping at once, ~1 s one by
    # one) waiting to hand leadership to peers that are leaving too.
    for stopping in (True, False):
        for member in members:
            if not member.owned_here:
                continue
            try:
                if stopping:
                    member.kill()
                else:
                    member.discard(grace)
            except Exception as error:  # collected: the first is raised once every member is gone
                errors.append(error)
    if errors:
        raise errors[0]


def _named(error: EtcdStartError, index: int, name: str) -> EtcdStartError:
    """The same error, saying which member it came from."""
    message = str(error).split(_LOG_MARKER, 1)[0]
    return type(error)(
        f"cluster member {index} ({name}): {message}", returncode=error.returncode, log_tail=error.log_tail
    )


def _wait_peer_served(member: MemberProcess, context: ssl.SSLContext | None, deadline: float) -> None:
    """Return once ``member`` answers HTTP on its peer port, or once it exited (the readiness wait says why)."""
    while member.running and time.monotonic() < deadline:
        remaining = max(0.01, deadline - time.monotonic())
        connection = connect(member.command.peer_url, timeout=remaining, ssl_context=context)
        try:
            connection.request("GET", "/version")
            connection.getresponse().read()
            return
        except ConnectionRefusedError:
            time.sleep(0.002)  # not bound yet: that takes a few milliseconds after the spawn
        except (OSError, http.client.HTTPException):
            return  # anything else is for the readiness wait to report, with the member's log
        finally:
            connection.close()
