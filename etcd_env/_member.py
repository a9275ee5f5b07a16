"""One running etcd process: its record, its watchdog, its readiness, its end.

Used by :class:`EtcdServer` (one member) and :class:`EtcdCluster` (several). It
owns nothing it did not create: ports are reserved and released by the caller.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._binary import EtcdBinary, check_binary, resolve_binary
from ._command import MemberCommand
from ._errors import EtcdStartError
from ._process import StdStream, log_tail, spawn, terminate, wait_exit
from ._readiness import ReadinessCheck
from ._registry import ServerRecord, reap

logger = logging.getLogger("etcd_env")

_WATCHDOG = str(Path(__file__).with_name("_watchdog.py"))


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
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._watchdog_pipe: int | None = None

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
        self.process = spawn(self.command.argv(), log_path=self._log_path, stderr=self._stderr)
        self.record.write_info(
            {
                **self._info,
                "name": self.command.name,
                "pid": self.process.pid,
                "owner_pid": os.getpid(),
                "client_url": self.command.client_url,
                "peer_url": self.command.peer_url,
                "data_dir": str(self.command.data_dir),
                "created_data_dirs": [str(path) for path in self._removable],
                "log": str(self._log_path),
                "started_at": time.time(),
            }
        )
        self._start_watchdog(self.process.pid)

    def _start_watchdog(self, pgid: int) -> None:
        self._close_watchdog(stopped_cleanly=True)
        read_end, write_end = os.pipe()
        try:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-I", "-S", _WATCHDOG, str(read_end), str(pgid), self.command.name]
                + [str(path) for path in [*self._removable, self.record.root]],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(read_end,),
                start_new_session=True,
            )
        finally:
            os.close(read_end)
        self._watchdog_pipe = write_end

    def _close_watchdog(self, *, stopped_cleanly: bool) -> None:
        if self._watchdog_pipe is not None:
            if stopped_cleanly:
                os.write(self._watchdog_pipe, b"x")
            os.close(self._watchdog_pipe)
            self._watchdog_pipe = None
        if self._watchdog is not None:
            if not wait_exit(self._watchdog, 5):
                self._watchdog.kill()
                self._watchdog.wait()
            self._watchdog = None

    def wait_ready(self, check: ReadinessCheck, deadline: float) -> None:
        if self.process is None:
            raise RuntimeError("launch() first")
        check.wait(self.process, deadline, self.log_tail)

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

    def discard(self, grace: float = 5.0) -> None:
        """Stop etcd and remove everything this member created. Safe to call twice."""
        self.terminate(grace)
        self.record.remove(self._removable)
        self._close_watchdog(stopped_cleanly=True)


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
