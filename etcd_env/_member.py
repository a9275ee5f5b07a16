"""One running etcd process: its record, its watchdog, its readiness, its end.

Used by :class:`EtcdServer` (one member) and :class:`EtcdCluster` (several). It
owns nothing it did not create: ports are reserved and released by the caller.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._binary import EtcdBinary, check_binary, resolve_binary
from ._command import MemberCommand
from ._errors import EtcdStartError, ForeignListenerError, HostNotLocalError
from ._process import StdStream, log_tail, spawn, terminate, wait_exit
from ._readiness import ReadinessCheck
from ._registry import ServerRecord, reap

logger = logging.getLogger("etcd_env")

_FOREIGN_EXIT_WAIT = 3.0


class MemberProcess:
    """An etcd process plus the watchdog that cleans up if our process dies first."""

    def __init__(
        self,
        command: MemberCommand,
        record: ServerRecord,
        *,
        removable: list[Path],
        stderr: StdStream = None,
        log_path: Path | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.command = command
        self.record = record
        self._removable = removable
        self._stderr = stderr
        self._log_path = log_path or record.log_path
        self._info = info or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self._log_path

    def log_tail(self, lines: int = 25) -> str:
        tail = log_tail(self._log_path, lines)
        if self._stderr is not None:
            tail += "\n(etcd's stderr went to the stream given to start(); only its stdout is above)"
        return tail

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def launch(self) -> None:
        if self.running:
            raise RuntimeError(f"member {self.command.name} is already running")
        watchdog = self.record.watchdog
        # Said before the spawn: an owner dying inside it leaves the watchdog looking for the name.
        watchdog.spawning()
        self.process = spawn(
            self.command.argv(), log_path=self._log_path, stderr=self._stderr, env=self.command.environment()
        )
        watchdog.spawned(self.process.pid)
        self.record.write_info(
            {
                **self._info,
                "name": self.command.name,
                "pid": self.process.pid,
                "owner_pid": os.getpid(),
                "watchdog_pid": watchdog.pid,
                "client_url": self.command.client_url,
                "peer_url": self.command.peer_url,
                "data_dir": str(self.command.data_dir),
                "created_data_dirs": [str(path) for path in self._removable],
                "log": str(self._log_path),
                "started_at": time.time(),
            }
        )

    def wait_ready(self, check: ReadinessCheck, deadline: float) -> None:
        if self.process is None:
            raise RuntimeError("launch() first")
        try:
            check.wait(self.process, deadline, self.log_tail)
        except ForeignListenerError:
            # Another user's program (outside our port locks) may have bound our port first:
            # then our etcd exits saying so, and that exit, not the stranger, is the error,
            # which the port-clash retry understands. Go's start takes ~20 ms; allow for load.
            if not wait_exit(self.process, _FOREIGN_EXIT_WAIT):
                raise
            raise EtcdStartError(
                f"etcd exited with code {self.process.returncode} while another program answered on its port",
                returncode=self.process.returncode,
                log_tail=self.log_tail(),
            ) from None

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        """SIGKILL etcd (a crash, for fault tests); its data stays for a restart."""
        if self.process is not None:
            self.signal(signal.SIGKILL)
            self.process.wait()

    def terminate(self, grace: float = 5.0) -> int | None:
        """Stop etcd (SIGTERM, then SIGKILL after ``grace``); its data stays."""
        if self.process is None:
            return None
        return terminate(self.process, grace=grace)

    @property
    def owned_here(self) -> bool:
        """Whether this process started the member (False in a forked child, which must not touch it)."""
        return self.record.watchdog.owned_here

    def discard(self, grace: float = 5.0) -> None:
        """Stop etcd and remove everything this member created. Safe to call twice."""
        if not self.owned_here:
            return
        self.terminate(grace)
        self.record.remove(self._removable)


def binary_for_start(
    binary_arg: str | os.PathLike[str] | None, *, needs_v2: bool, timeout: float | None = None
) -> EtcdBinary:
    """The first steps of every start: the checked binary, after reclaiming what dead owners left.

    ``timeout`` (the start's) bounds the ``etcd --version`` probe.
    """
    binary = resolve_binary(binary_arg, timeout=timeout)
    check_binary(binary, needs_v2=needs_v2)
    reap()
    return binary


def start_error_mentions_port_clash(error: EtcdStartError) -> bool:
    return "address already in use" in error.log_tail


def retry_on_port_clash(start_once: Callable[[], None], num_retries: int, *, fresh_ports: bool = True) -> None:
    """Run ``start_once`` up to ``num_retries`` times, again only if etcd lost a port to another program.

    Any other failure is raised at once: retrying a missing binary or a bad flag only
    hides the cause (the reference retried every exception).
    """
    attempts = max(1, num_retries)
    for attempt in range(1, attempts + 1):
        try:
            start_once()
        except EtcdStartError as error:
            if attempt < attempts and fresh_ports and start_error_mentions_port_clash(error):
                logger.warning("etcd lost a port to another program; retrying on fresh ports")
                continue
            raise
        return


def check_local_host(host: str) -> None:
    """Refuse a ``host`` that names no address of this machine, before any port is looked at.

    Otherwise every port probe fails to bind and the start ends in "no free port",
    which sends the user after the wrong cause.
    """
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)}
    except (socket.gaierror, UnicodeError) as error:
        raise HostNotLocalError(
            f"host {host!r} does not resolve ({error}). Pass an address of this machine, e.g. 127.0.0.1."
        ) from None
    for address in sorted(addresses):
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((address, 0))
            except OSError as error:
                if error.errno == errno.EADDRNOTAVAIL:
                    continue
                raise
            return
    raise HostNotLocalError(
        f"host {host!r} ({', '.join(sorted(addresses))}) is not an address of this machine, so etcd "
        "cannot listen on it. Pass a local address: 127.0.0.1 (the default), ::1, or one of this machine's own."
    )
