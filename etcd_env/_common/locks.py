"""Advisory file locks that the kernel releases when their holder dies.

Every lock etcd_env takes means "a live process holds this": a port reservation, a
server's owner lock, the shell's state. That is true of ``flock`` only. filelock >=
3.16 can silently fall back to a marker-file "soft" lock where flock is missing,
and a soft lock outlives a crashed holder; it is refused here, once for all locks.

A flock belongs to an open file description, which a forked child shares: the
child's unlock (a finalizer at its exit is enough) would drop its parent's lock.
Recent filelock forgets held locks in a forked child; for older ones the
descriptor is pointed at /dev/null in the child, so whatever the child does to
it never reaches the parent's lock.

filelock 3.x as late as 3.29 (nixos-26.05's) also unlinks the lock file on every
release, so a forked child's exit removed its parent's lock file (another process
could then lock a new file of that name: the parent's port, taken), and merely
looking (``reap --dry-run``, ``status``) deleted the lock files it looked at. On
filelock 3.x the release here is flock's own: unlock and close, the file stays
(filelock 4 keeps it, and 3.12, the floor, released exactly so).
"""

from __future__ import annotations

import contextlib
import fcntl
import inspect
import os
import weakref
from pathlib import Path

import filelock
from filelock import UnixFileLock

#: Released from whichever thread stops a server (atexit, a fixture's teardown).
LOCK_OPTIONS: dict[str, object] = {"thread_local": False}
if "fallback_to_soft" in inspect.signature(UnixFileLock.__init__).parameters:
    LOCK_OPTIONS["fallback_to_soft"] = False

_locks: weakref.WeakSet[UnixFileLock] = weakref.WeakSet()


class _FileKeepingLock(UnixFileLock):
    """filelock 3.x's UnixFileLock, released without unlinking its file (see the module's docstring)."""

    def _release(self) -> None:
        context = vars(self)["_context"]
        fd = context.lock_file_fd
        context.lock_file_fd = None
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


_LOCK_CLASS = _FileKeepingLock if filelock.__version__.split(".")[0] == "3" else UnixFileLock


def kernel_lock(path: Path, *, timeout: float = 0) -> UnixFileLock:
    """A flock on ``path``; ``timeout=0`` makes acquire() fail at once when another process holds it."""
    lock = _LOCK_CLASS(str(path), timeout=timeout, **LOCK_OPTIONS)  # type: ignore[arg-type]
    _locks.add(lock)
    return lock


def held_fd(lock: UnixFileLock) -> int | None:
    """The descriptor a held lock is on, or None (not held, or a filelock that hides it)."""
    fd = getattr(getattr(lock, "_context", None), "lock_file_fd", None)
    return fd if isinstance(fd, int) else None


def _detach_inherited_locks() -> None:
    for lock in list(_locks):
        fd = held_fd(lock)
        if fd is None:
            continue  # not held, or filelock already forgot it in this child
        with contextlib.suppress(OSError):
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, fd)
            os.close(null)


os.register_at_fork(after_in_child=_detach_inherited_locks)
