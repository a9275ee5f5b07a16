"""Cleans up after an owner that died without stopping its server.

Run as a standalone script (``python -I -S watchdog.py FD NAME PATH...``,
standard library only, so it starts in milliseconds and does not need etcd_env
importable). The owner arms it *before* the server's record or etcd exist, so
there is no instant in a start when the owner can die unguarded. It blocks
reading a pipe whose write end only the owner holds, on which the owner sends
NUL-terminated messages:

``spawn``       etcd is about to be spawned (a spawn is in flight until ``pid=``);
``pid=N``       etcd runs as pid N, leader of its own process group;
``rm=PATH``     one more directory to remove if the owner dies (a data dir it is about to create);
``id=D:I:PATH`` PATH is the directory the owner created, device D and inode I;
``stop``        the owner stopped the server and removed its files itself.

End-of-file without ``stop`` means the owner died (SIGKILL included): the
watchdog kills every process started with ``--name NAME`` (found in /proc, so an
etcd whose pid never reached the pipe is found too), then removes the paths, the
record directory and its lock file last. A data directory is removed only while it
is the one the owner created (``id=``): a directory someone else has since put at
that path is left alone. One named by ``rm=`` but never pinned by ``id=`` (the
owner died between creating it and saying so) is removed only if it is empty,
which it is until etcd starts.

An owner killed between spawning etcd and setpriv's ``prctl(PR_SET_PDEATHSIG)``
leaves an etcd that no death signal reaches, and that appears in /proc only once
setpriv has exec'd. So when a spawn was in flight, the watchdog keeps looking
for the name until none has shown up for a while, and only then removes files.
"""

# os.path, not pathlib: importing pathlib would add milliseconds to every watchdog's start.
# ruff: noqa: PTH106, PTH108, PTH112, PTH114, PTH208

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time

#: After an owner died mid-spawn, how long no process with the name must be seen before the
#: watchdog trusts that none will appear. The orphaned child execs setpriv, then etcd, within
#: milliseconds; a loaded 2-core machine was given a wide margin.
_QUIET_AFTER_SPAWN = 1.5


def _dead(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _named(marker: bytes) -> set[int]:
    """The live processes whose argv holds ``--name NAME`` (etcd, or setpriv about to exec it)."""
    found: set[int] = set()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if marker in cmdline.read():
                    found.add(int(entry))
        except OSError:
            continue
    found.discard(os.getpid())
    return {pid for pid in found if not _dead(pid)}


def _still_ours(pid: int, marker: bytes) -> bool:
    # A pid from the pipe may have been reused by an unrelated process since etcd exited.
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return marker in cmdline.read()
    except OSError:
        return sys.platform != "linux" and not _dead(pid)


def _kill(pids: set[int]) -> None:
    for pid in pids:
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while any(not _dead(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.005)


def _read_messages(read_fd: int) -> tuple[bool, bool, set[int], dict[str, tuple[int, int] | None]]:
    """Read until end-of-file: (stopped, spawn in flight, pids, data dirs with their identity if known)."""
    buffer, in_flight = b"", False
    pids: set[int] = set()
    paths: dict[str, tuple[int, int] | None] = {}
    while True:
        try:
            chunk = os.read(read_fd, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            return False, in_flight, pids, paths
        buffer += chunk
        *messages, buffer = buffer.split(b"\0")
        for message in messages:
            kind, _, value = message.partition(b"=")
            if kind == b"stop":
                return True, False, pids, paths
            if kind == b"spawn":
                in_flight = True
            elif kind == b"pid":
                pids.add(int(value))
                in_flight = False
            elif kind == b"rm":
                paths.setdefault(os.fsdecode(value), None)
            elif kind == b"id":
                device, inode, path = value.split(b":", 2)
                paths[os.fsdecode(path)] = (int(device), int(inode))


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
        if os.path.lexists(path):  # a file appeared while the tree went: once more
            shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _remove_data_dir(path: str, identity: tuple[int, int] | None) -> None:
    if identity is None:
        with contextlib.suppress(OSError):
            os.rmdir(path)  # only an empty one: see the module docstring
        return
    try:
        info = os.lstat(path)
    except OSError:
        return
    if (info.st_dev, info.st_ino) == identity:
        _remove(path)


def main(argv: list[str]) -> int:
    read_fd, name = int(argv[1]), argv[2]
    marker = b"--name\0" + os.fsencode(name) + b"\0"
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stopped, in_flight, pids, extra = _read_messages(read_fd)
    if stopped:
        # The owner waits for this exit in stop(): skip the interpreter's teardown (~3 ms).
        os._exit(0)
    _kill({pid for pid in pids if _still_ours(pid, marker)} | _named(marker))
    if in_flight:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < _QUIET_AFTER_SPAWN:
            found = _named(marker)
            if found:
                _kill(found)
                quiet_since = time.monotonic()
            time.sleep(0.01)
    # Data dirs first, then the record directory, then its lock file: whatever is seen
    # half-removed still has its lock file, so a reaper can finish the job.
    for path, identity in extra.items():
        _remove_data_dir(path, identity)
    for path in argv[3:]:
        _remove(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
