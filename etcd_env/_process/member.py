"""One running etcd process: its record, its watchdog, its readiness, its end.

Used by :class:`EtcdServer` (one member) and :class:`EtcdCluster` (several). It
owns nothing it did not create: ports are reserved and released by the caller.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .._common.errors import EtcdStartError, ForeignListenerError, HostNotLocalError, NameClashError, ResourceLimitError
from .command import MemberCommand
from .readiness import ReadinessCheck
from .registry import CreatedDir, ServerRecord
from .spawn import StdStream, kill_processes, log_tail, processes_named, spawn, terminate, wait_exit

logger = logging.getLogger("etcd_env")

_FOREIGN_EXIT_WAIT = 3.0
#: How long a clean exit before readiness is watched for what it left behind (see _left_named).
_LEFT_BEHIND_LOOK = 0.5


class MemberProcess:
    """An etcd process plus the watchdog that cleans up if our process dies first."""

    def __init__(
        self,
        command: MemberCommand,
        record: ServerRecord,
        *,
        removable: list[CreatedDir],
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
        self._spawned_once = False
        self._ended_here = False  # whether the current process was killed or stopped by us

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
        self._spawned_once, self._ended_here = True, False
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
                "created_data_dirs": [created.to_json() for created in self._removable],
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
            if processes_named(self.command.name):
                # What answered carries our unique --name: the binary started etcd out of our
                # process group (`setsid etcd "$@" &`) and left. Not a clash: never retried.
                raise self._left_in_background() from None
            raise EtcdStartError(
                f"etcd exited with code {self.process.returncode} while another program answered on its port",
                returncode=self.process.returncode,
                log_tail=self.log_tail(),
            ) from None
        except EtcdStartError:
            # The same wrapper, when it exits before its daemon answers (`setsid etcd "$@" &` and
            # nothing after it, or a loaded machine): our child is gone, yet something still
            # carries our unique --name. Before, this said only "exited with code 0".
            if self.process.poll() is not None and self._left_named():
                raise self._left_in_background() from None
            raise

    def _left_named(self) -> set[int]:
        """What still carries our unique --name now that our child has exited.

        etcd itself never exits 0 before it serves, so a clean exit is a wrapper that left
        something behind: its background job may be between fork and exec for a moment (seen
        once in CI under load: a single look found nothing), so that case is looked at again
        for a short while. Any other exit code is etcd failing, looked at once.
        """
        assert self.process is not None  # only after launch()
        deadline = time.monotonic() + (_LEFT_BEHIND_LOOK if self.process.returncode == 0 else 0)
        while not (named := processes_named(self.command.name)) and time.monotonic() < deadline:
            time.sleep(0.02)
        return named

    def _left_in_background(self) -> EtcdStartError:
        assert self.process is not None  # only after launch()
        return EtcdStartError(
            f"{self.command.binary.path} exited (code {self.process.returncode}) and left etcd running in "
            "the background, out of reach of etcd_env's process group and death signal. Pass a binary "
            'that stays in the foreground (a wrapper script should end with `exec etcd "$@"`).',
            returncode=self.process.returncode,
        )

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        """SIGKILL etcd (a crash, for fault tests); its data stays for a restart."""
        if self.process is not None:
            self._ended_here = self._ended_here or self.process.poll() is None
            self.signal(signal.SIGKILL)
            self.process.wait()

    def terminate(self, grace: float = 5.0) -> int | None:
        """Stop etcd (SIGTERM, then SIGKILL after ``grace``); its data stays."""
        if self.process is None:
            return None
        self._ended_here = self._ended_here or self.process.poll() is None
        return terminate(self.process, grace=grace)

    @property
    def owned_here(self) -> bool:
        """Whether this process started the member (False in a forked child, which must not touch it)."""
        return self.record.watchdog.owned_here

    def discard(self, grace: float = 5.0) -> None:
        """Stop etcd and remove everything this member created. Safe to call twice."""
        if not self.owned_here:
            return
        left_alone = self._spawned_once and (
            self.process is None or (self.process.poll() is not None and not self._ended_here)
        )
        self.terminate(grace)
        if left_alone:
            # Our child is gone, or we never learned it (a spawn cut short by Ctrl-C). What it
            # started may live on out of reach of its process group: a wrapper binary's
            # `setsid etcd "$@" &`. Our unique --name finds it.
            kill_processes(processes_named(self.command.name))
        self.record.remove(self._removable)


def start_error_mentions_port_clash(error: EtcdStartError) -> bool:
    return "address already in use" in error.log_tail


def _clash(error: BaseException, fresh_ports: bool) -> str | None:
    """What kind of clash ``error`` is (retried on fresh ports and a fresh name), or None."""
    if isinstance(error, NameClashError):
        return "another process holds the server name's lock"
    if not fresh_ports:
        return None
    if isinstance(error, ForeignListenerError):
        return "another program answered on etcd's port"
    if isinstance(error, EtcdStartError) and start_error_mentions_port_clash(error):
        return "etcd lost a port to another program"
    return None


def retry_on_clash(
    start_once: Callable[[], None], num_retries: int, deadline: float, *, fresh_ports: bool = True
) -> None:
    """Run ``start_once`` again after a clash, on fresh ports and a fresh name, while ``deadline`` allows.

    A clash is another process taking what we picked: a port (another user's program, outside
    our locks), a server name's lock (a reaper looking, for a moment that load can stretch).
    Clashes come in runs under load, so they are retried until the start's deadline rather than
    a fixed number of times; ``num_retries`` of 1 or less turns retrying off. Any other failure
    is raised at once: retrying a missing binary or a bad flag only hides the cause (the
    reference retried every exception).
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            start_once()
        except EtcdStartError as error:
            why = _clash(error, fresh_ports)
            if why is None or num_retries <= 1 or time.monotonic() >= deadline:
                raise
            logger.warning("%s (attempt %d); retrying on fresh ports", why, attempt)
            continue
        except NameClashError as error:
            if num_retries <= 1 or time.monotonic() >= deadline:
                raise
            logger.warning("%s (attempt %d); retrying under a fresh name", _clash(error, fresh_ports), attempt)
            continue
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


@contextlib.contextmanager
def too_many_open_files() -> Iterator[None]:
    """Turn running out of file descriptors anywhere in a start into one error saying so.

    What was created is gone by then: each step removes its own on the way out, and what
    needs descriptors to remove is left to the watchdog (see ``ServerRecord.remove``).
    """
    try:
        yield
    except OSError as error:
        if error.errno not in (errno.EMFILE, errno.ENFILE):
            raise
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        whose = "this process" if error.errno == errno.EMFILE else "the system"
        raise ResourceLimitError(
            error.errno,
            f"starting etcd needs file descriptors and {whose} has none left "
            f"(this process may open {soft}: RLIMIT_NOFILE). Close files you no longer need, "
            "or raise the limit (`ulimit -n`, or resource.setrlimit).",
        ) from None
