"""Advisory file locks that the kernel releases when their holder dies.

Every lock etcd_env takes means "a live process holds this": a port reservation, a
server's owner lock, the shell's state. That is true of ``flock`` only. filelock >=
3.16 can silently fall back to a marker-file "soft" lock where flock is missing,
and a soft lock outlives a crashed holder; it is refused here, once for all locks.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from filelock import UnixFileLock

#: Released from whichever thread stops a server (atexit, a fixture's teardown).
LOCK_OPTIONS: dict[str, object] = {"thread_local": False}
if "fallback_to_soft" in inspect.signature(UnixFileLock.__init__).parameters:
    LOCK_OPTIONS["fallback_to_soft"] = False


def kernel_lock(path: Path, *, timeout: float = 0) -> UnixFileLock:
    """A flock on ``path``; ``timeout=0`` makes acquire() fail at once when another process holds it."""
    return UnixFileLock(str(path), timeout=timeout, **LOCK_OPTIONS)  # type: ignore[arg-type]
