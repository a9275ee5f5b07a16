"""The on-disk record of the servers this user runs, and reclaiming dead owners' leftovers.

Each server gets ``servers/<name>/`` (0700: data dir, log, ``info.json``) and a
lock file ``servers/<name>.lock`` held by its owner for the server's whole life.
The lock lives beside the directory, not in it, and is taken before the
directory exists, so a reaper can never remove a directory whose owner is still
setting it up. A lock nobody holds means the owner is dead: the kernel dropped it.

A record's watchdog is armed before its lock file or directory exist, so an
owner that dies at any point leaves them to the watchdog, which removes the lock
file last. A reaper still reclaims what a watchdog could not (one killed with
its owner): a directory, a lock file, or both, under a name no live owner holds.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import Timeout, UnixFileLock

from .._common.errors import NameClashError
from .._common.locks import held_fd, kernel_lock
from .._common.paths import existing_sub, private_dir, servers_dir, write_atomically
from .guard import Watchdog
from .spawn import command_line, pid_alive, processes_named, wait_gone

INFO_FILE = "info.json"
LOG_FILE = "etcd.log"

#: How long a fresh name's lock is waited for before the start moves on to another name.
#: Only a reaper glancing at the new lock file holds it, for moments; under heavy load those
#: moments stretch, and a fresh name is quicker than waiting them out.
_NAME_LOCK_WAIT = 0.5


@dataclass(frozen=True)
class CreatedDir:
    """A directory etcd_env created: its absolute path and the (device, inode) it had then.

    Removal checks both, so a directory someone put at that path since (after a rename, or
    a path that meant another place once the working directory changed) is never removed
    in its place.
    """

    path: Path
    device: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> CreatedDir:
        info = os.lstat(path)
        return cls(path.absolute(), info.st_dev, info.st_ino)

    @classmethod
    def from_json(cls, value: object) -> CreatedDir | None:
        if isinstance(value, list) and len(value) == 3:
            path, device, inode = value
            if isinstance(path, str) and isinstance(device, int) and isinstance(inode, int):
                return cls(Path(path), device, inode)
        return None  # an unknown entry identifies nothing, so nothing is removed for it

    def to_json(self) -> list[object]:
        return [str(self.path), self.device, self.inode]

    def still_ours(self) -> bool:
        try:
            info = os.lstat(self.path)
        except OSError:
            return False
        return stat.S_ISDIR(info.st_mode) and (info.st_dev, info.st_ino) == (self.device, self.inode)

    def remove(self) -> bool:
        """Remove it if it is still the directory we created; whether nothing of it is left."""
        if self.still_ours():
            shutil.rmtree(self.path, ignore_errors=True)
        return not self.still_ours()


class ServerRecord:
    """A server's private directory, held by its owner."""

    def __init__(self, name: str, root: Path, lock: UnixFileLock, watchdog: Watchdog) -> None:
        self.name = name
        self.root = root
        self._lock = lock
        self.watchdog = watchdog

    @classmethod
    def create(cls, name: str, directory: Path | None = None, *, deadline: float | None = None) -> ServerRecord:
        """Arm the watchdog, take the name's lock, create the directory.

        Raises :class:`NameClashError` when the name's lock stays held (until ``deadline``, at
        most a moment): the caller retries under a fresh name, as for a port clash.
        """
        # Absolute, once: a later chdir must not make stop() remove another place.
        parent = (directory or servers_dir()).absolute()
        root, lock_path = parent / name, parent / f"{name}.lock"
        watchdog = Watchdog.arm(name, [root, lock_path])
        try:
            lock = _acquire_record_lock(lock_path, name, deadline)
        except BaseException:
            watchdog.stop()
            raise
        try:
            root = private_dir(root)
        except BaseException:
            _unlink_and_release(lock)
            watchdog.stop()
            raise
        return cls(name, root, lock, watchdog)

    @property
    def log_path(self) -> Path:
        return self.root / LOG_FILE

    @property
    def default_data_dir(self) -> Path:
        return self.root / "data"

    def write_info(self, info: dict[str, Any]) -> None:
        write_atomically(self.root / INFO_FILE, json.dumps(info, indent=1))

    def remove(self, extra: list[CreatedDir] | None = None) -> None:
        """Remove the record, ``extra`` directories and the lock file; only in the process that created it.

        What cannot be removed here (out of file descriptors, ``EMFILE``) is handed to the
        watchdog, which removes it as if we had died, lock file last.
        """
        if not self.watchdog.owned_here:
            return  # a forked child: the parent's files and lock are not its to touch
        removed = all([directory.remove() for directory in extra or []])
        shutil.rmtree(self.root, ignore_errors=True)
        if not removed or os.path.lexists(self.root):
            self.watchdog.hand_over()
            if self._lock.is_locked:
                self._lock.release(force=True)  # the lock file stays, for the watchdog to remove last
            return
        if self._lock.is_locked:
            _unlink_and_release(self._lock)
        self.watchdog.stop()


def _acquire_record_lock(lock_path: Path, name: str, deadline: float | None) -> UnixFileLock:
    """The owner lock of a fresh name, on the lock file that is really at ``lock_path``.

    A reaper that finds a lock file without a directory removes it while holding it. An
    owner that opened the file before that removal would then hold a lock on a file
    nobody else can see, so the lock is taken again until the file held is the file there.
    """
    now = time.monotonic()
    give_up = now + _NAME_LOCK_WAIT if deadline is None else min(deadline, now + _NAME_LOCK_WAIT)
    while True:
        lock = kernel_lock(lock_path)
        try:
            # A reaper may hold a fresh name's lock for a moment while it looks; wait that out.
            lock.acquire(timeout=max(0.0, give_up - time.monotonic()))
        except Timeout:
            raise NameClashError(
                f"the lock of server name {name!r} is held by another process (a reaper looking, or a live server)"
            ) from None
        if _holds_file_at(lock, lock_path):
            return lock
        lock.release(force=True)


def _holds_file_at(lock: UnixFileLock, path: Path) -> bool:
    try:
        there = path.stat()
    except FileNotFoundError:
        return False
    fd = held_fd(lock)
    if fd is None:
        return True  # filelock hides the descriptor: the file exists, and names are unique
    held = os.fstat(fd)
    return (there.st_dev, there.st_ino) == (held.st_dev, held.st_ino)


def _unlink_and_release(lock: UnixFileLock) -> None:
    # Unlinked while held, so no one can take the name's lock between the two.
    Path(lock.lock_file).unlink(missing_ok=True)
    lock.release(force=True)


@dataclass(frozen=True)
class Leftover:
    """A server directory whose owner is gone, and the etcd it may have left running."""

    name: str
    root: Path
    pid: int | None
    running: bool
    data_dirs: tuple[CreatedDir, ...]

    def describe(self) -> str:
        state = f"etcd pid {self.pid} still running" if self.running else "no etcd running"
        where = f"directory {self.root}" if self.root.exists() else "only its lock file is left"
        return f"{self.name}: {state}; {where}"


def _read_info(root: Path) -> dict[str, Any]:
    try:
        info = json.loads((root / INFO_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _etcd_running(info: dict[str, Any]) -> int | None:
    pid, name = info.get("pid"), info.get("name")
    if not isinstance(pid, int) or not pid_alive(pid):
        return None
    argv = command_line(pid)
    if argv and name not in argv:
        return None  # the pid was reused by something else
    return pid


def _names(directory: Path) -> set[str]:
    try:
        entries = list(directory.iterdir())
    except OSError:
        return set()
    return {entry.name.removesuffix(".lock") for entry in entries if not entry.name.startswith(".")}


def find_leftovers(directory: Path | None = None, *, min_age: float = 0.0) -> list[Leftover]:
    """Servers whose owner died without stopping them: a directory, a lock file or both. Nothing is changed."""
    looked_in = directory or existing_sub("servers")
    if looked_in is None:
        return []
    parent = looked_in.absolute()
    found: list[Leftover] = []
    now = time.time()
    for name in sorted(_names(parent)):
        lock_path = parent / f"{name}.lock"
        root = parent / name
        try:
            if now - max(path.stat().st_mtime for path in (root, lock_path) if path.exists()) < min_age:
                continue
        except (OSError, ValueError):  # removed meanwhile, by its watchdog or another reaper
            continue
        had_lock_file = lock_path.exists()
        lock = kernel_lock(lock_path)
        try:
            lock.acquire()
        except Timeout:
            continue  # the owner is alive
        try:
            info = _read_info(root)
            pid = _etcd_running(info) if "pid" in info else min(processes_named(name), default=None)
            entries = info.get("created_data_dirs", [])
            created = [found_dir for entry in entries if (found_dir := CreatedDir.from_json(entry)) is not None]
            found.append(Leftover(name, root, pid, pid is not None, tuple(created)))
        finally:
            if had_lock_file:
                lock.release(force=True)
            else:  # looking must not leave a lock file that was not there
                _unlink_and_release(lock)
    return found


def reap(directory: Path | None = None) -> list[Leftover]:
    """Stop and remove every server whose owner is gone; return what was reclaimed."""
    looked_in = directory or existing_sub("servers")
    if looked_in is None:
        return []
    parent = looked_in.absolute()
    reclaimed: list[Leftover] = []
    for leftover in find_leftovers(parent):
        lock = kernel_lock(parent / f"{leftover.name}.lock")
        try:
            lock.acquire()
        except Timeout:
            continue  # adopted in the meantime
        try:
            if leftover.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(leftover.pid, signal.SIGKILL)
                wait_gone(leftover.pid, 2.0)
            for data_dir in leftover.data_dirs:
                data_dir.remove()
            shutil.rmtree(leftover.root, ignore_errors=True)
            _unlink_and_release(lock)
            reclaimed.append(leftover)
        finally:
            if lock.is_locked:
                lock.release(force=True)
    return reclaimed


def live_servers(directory: Path | None = None) -> list[dict[str, Any]]:
    """The info of every server whose owner is alive (for ``etcd-env status``)."""
    parent = directory or existing_sub("servers")
    if parent is None:
        return []
    alive: list[dict[str, Any]] = []
    for name in sorted(_names(parent)):
        root = parent / name
        if not root.is_dir():
            continue
        lock = kernel_lock(parent / f"{name}.lock")
        try:
            lock.acquire()
        except Timeout:
            info = _read_info(root)
            info.setdefault("name", name)
            alive.append(info)
            continue
        lock.release(force=True)
    return alive
