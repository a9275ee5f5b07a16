"""Spawning and stopping etcd: its own process group, a death signal, a log file.

On Linux the child asks the kernel for ``SIGKILL`` when its parent dies
(``PR_SET_PDEATHSIG``), so etcd cannot outlive an owner killed by any signal.
The kernel ties that signal to the *thread* that forked, not the process: a
server started from a short-lived thread would be killed when the thread ends.
So every spawn goes through one long-lived daemon thread, which lives exactly
as long as the process does.

The death signal is set by util-linux's ``setpriv --pdeathsig`` exec'd in front
of etcd where it is installed: Python then spawns with ``vfork`` (0.15 ms), while
a ``preexec_fn`` forces a full ``fork`` of the owner (1.6 ms for a bare
interpreter, 9-13 ms once torch is imported, measured with benchmarks/). Without
setpriv the ``preexec_fn`` sets the same signal, only slower.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1

StdStream = int | IO[str] | IO[bytes] | None


@functools.cache
def _prctl() -> Callable[..., int]:
    # find_library runs `ldconfig -p` (2-3 ms): once per process, not once per spawn.
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl


@functools.cache
def _setpriv() -> str | None:
    return shutil.which("setpriv") if sys.platform.startswith("linux") else None


def death_signal_setter() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    prctl = _prctl()
    parent = os.getpid()

    def set_death_signal() -> None:
        # Runs in the child between fork and exec: only async-signal-safe work.
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return set_death_signal


class _Spawner:
    """The one thread that forks every etcd (see the module docstring)."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[tuple[Callable[[], subprocess.Popen[bytes]], Future[subprocess.Popen[bytes]]]]
        self._requests = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="etcd-env-spawner", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            launch, result = self._requests.get()
            try:
                result.set_result(launch())
            except BaseException as error:  # handed to the caller's thread, raised there
                result.set_exception(error)

    def run(self, launch: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        if threading.current_thread() is self._thread:
            return launch()
        result: Future[subprocess.Popen[bytes]] = Future()
        self._requests.put((launch, result))
        try:
            return result.result()
        except BaseException:
            # Interrupted while waiting (Ctrl-C): the spawn completes all the same, and then nobody
            # would know its process. Wait for it and kill it before the interrupt goes on, so that
            # no etcd outlives the start() it belonged to, not even for a moment.
            _kill_orphaned_spawn(result)
            raise


def _kill_orphaned_spawn(result: Future[subprocess.Popen[bytes]]) -> None:
    """Kill what ``result``'s spawn started (nothing if it failed); further Ctrl-C only restarts the wait."""
    while True:
        try:
            process = result.result()
        except KeyboardInterrupt:
            continue
        except BaseException:  # the spawn itself failed: it started nothing
            return
        break
    _signal_group(process.pid, signal.SIGKILL)
    while True:
        try:
            process.wait()
        except KeyboardInterrupt:
            continue
        return


class _SpawnerSlot:
    """Holds the process's spawner, created on first use."""

    def __init__(self) -> None:
        self.spawner: _Spawner | None = None
        self.lock = threading.Lock()

    def get(self) -> _Spawner:
        with self.lock:
            if self.spawner is None:
                self.spawner = _Spawner()
            return self.spawner


_slot = _SpawnerSlot()


def _forget_spawner() -> None:
    # A forked child has no spawner thread, only the parent's object: start afresh.
    _slot.__init__()  # type: ignore[misc]


os.register_at_fork(after_in_child=_forget_spawner)


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path | None,
    stderr: StdStream = None,
    env: dict[str, str] | None = None,
    die_with_parent: bool = True,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own process group, output to ``log_path`` (or ``stderr``).

    Output goes to a file, never to a pipe: nobody drains a pipe while tests
    run, and etcd blocks once the pipe buffer is full.
    """
    if stderr is subprocess.PIPE:
        raise ValueError(
            "stderr=subprocess.PIPE would block etcd once the pipe fills, since nothing reads it; "
            "pass a file, subprocess.DEVNULL, or None (etcd_env then keeps a log file)"
        )
    command = list(argv)
    preexec: Callable[[], None] | None = None
    if die_with_parent:
        setpriv = _setpriv()
        if setpriv is not None:
            # Unlike the preexec_fn, setpriv cannot re-check the parent after prctl: an etcd whose
            # owner died before setpriv's prctl is found by name and killed by the watchdog,
            # which was told a spawn is in flight (watchdog.py).
            command = [setpriv, "--pdeathsig", "KILL", "--", *command]
        else:
            preexec = death_signal_setter()

    def launch() -> subprocess.Popen[bytes]:
        log = open(log_path, "ab") if log_path is not None else None  # noqa: SIM115 - handed to the child
        try:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log if log is not None else subprocess.DEVNULL,
                stderr=stderr if stderr is not None else (log if log is not None else subprocess.DEVNULL),
                close_fds=True,
                start_new_session=True,
                preexec_fn=preexec,  # noqa: PLW1509 - forked from the one spawner thread; it only calls prctl
                env=env,
            )
        finally:
            if log is not None:
                log.close()

    if not die_with_parent or (preexec is None and not sys.platform.startswith("linux")):
        return launch()
    return _slot.get().run(launch)


def terminate(process: subprocess.Popen[bytes], *, grace: float = 5.0) -> int:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds; return the exit code."""
    if process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        if not wait_exit(process, grace):
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
    else:
        # The leader may be gone while something it started still holds the group.
        _signal_group(process.pid, signal.SIGKILL)
    return process.returncode


def wait_exit(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for our child to exit; return whether it did.

    ``Popen.wait(timeout)`` polls with sleeps that double up to 50 ms, so it saw
    etcd's exit ~5 ms late; a pidfd wakes us the moment the child exits.
    """
    if process.poll() is not None:
        return True
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # not Linux >= 5.3: only the polling wait is left
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        readable, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    if not readable:
        return False
    process.wait()
    return True


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def wait_gone(pid: int, timeout: float) -> bool:
    """Whether ``pid`` (not our child) disappeared within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.01)
    return not pid_alive(pid)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat_file = Path(f"/proc/{pid}/stat")
    if stat_file.exists():
        try:
            return stat_file.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False
    return True


def processes_named(name: str) -> set[int]:
    """The live processes started with ``--name name`` (etcd, or setpriv about to exec it), from /proc.

    What finds an etcd whose pid we never learned, or one that a wrapper binary started in
    a session of its own (``setsid etcd "$@" &``), out of reach of our process group.
    """
    marker = b"--name\0" + os.fsencode(name) + b"\0"
    found: set[int] = set()
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:
        return found
    for entry in entries:
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "cmdline").read_bytes():
                found.add(int(entry.name))
        except OSError:
            continue
    return {pid for pid in found if pid_alive(pid)}


def kill_processes(pids: set[int], timeout: float = 5.0) -> None:
    """SIGKILL each of ``pids`` (and the group it leads) and wait up to ``timeout`` for them to go."""
    for pid in pids:
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(pid, signal.SIGKILL)
    for pid in pids:
        wait_gone(pid, timeout)


def command_line(pid: int) -> list[str]:
    """The argv of a running process ([] where unknown): to tell our etcd from a reused pid."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def log_tail(path: Path | None, lines: int = 25) -> str:
    if path is None:
        return ""
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - 16384))
            text = log.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
