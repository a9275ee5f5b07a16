"""The owner's end of a server's watchdog (the watchdog itself is ``watchdog.py``).

A :class:`Watchdog` is armed before anything it guards exists and holds the only
write end of the watchdog's pipe. A forked child gets a copy of that write end;
if the child kept it, the watchdog could not see the owner die while the child
lives, and the child's exit would look like the owner's. So the copy is closed
in every forked child, and a watchdog belongs to the process that armed it: its
methods do nothing anywhere else.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import weakref
from pathlib import Path

from .spawn import wait_exit

_SCRIPT = str(Path(__file__).with_name("watchdog.py"))

_armed: weakref.WeakSet[Watchdog] = weakref.WeakSet()


class Watchdog:
    """A running ``watchdog.py`` for the etcd named ``name``, removing ``paths`` if we die."""

    def __init__(self, process: subprocess.Popen[bytes], write_end: int) -> None:
        self._process: subprocess.Popen[bytes] | None = process
        self._write_end: int | None = write_end
        # Writing and closing the pipe under one lock: a write after the close could land on a
        # descriptor number that another thread has since reused for something else.
        self._pipe_lock = threading.Lock()
        self._owner = os.getpid()
        _armed.add(self)

    @classmethod
    def arm(cls, name: str, paths: list[Path]) -> Watchdog:
        """Start a watchdog for etcd ``--name name``; on our death it removes ``paths`` in order."""
        read_end, write_end = os.pipe()
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", _SCRIPT, str(read_end), name, *map(str, paths)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(read_end,),
                start_new_session=True,  # a signal to our process group must not take it with us
            )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        return cls(process, write_end)

    @property
    def owned_here(self) -> bool:
        """Whether this process armed the watchdog (False in a forked child)."""
        return os.getpid() == self._owner

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _send(self, message: bytes) -> None:
        if os.getpid() != self._owner:
            return
        with self._pipe_lock:
            if self._write_end is None:
                return
            # A dead watchdog (a teardown that killed every child) must not fail the owner's work.
            with contextlib.suppress(BrokenPipeError):
                os.write(self._write_end, message + b"\0")

    def spawning(self) -> None:
        self._send(b"spawn")

    def spawned(self, pid: int) -> None:
        self._send(b"pid=%d" % pid)

    def also_remove(self, path: Path) -> None:
        """``path`` (absolute) goes too if we die; until :meth:`pin` says what it is, only while it is empty."""
        self._send(b"rm=" + os.fsencode(path))

    def pin(self, path: Path, device: int, inode: int) -> None:
        """``path`` is the directory we created, (``device``, ``inode``): remove it only while that holds."""
        self._send(b"id=%d:%d:" % (device, inode) + os.fsencode(path))

    def _close(self, message: bytes | None) -> bool:
        """Send ``message`` (if any) and close our end, atomically; whether this call closed it."""
        if os.getpid() != self._owner:
            return False
        with self._pipe_lock:
            if self._write_end is None:
                return False
            if message is not None:
                with contextlib.suppress(BrokenPipeError):
                    os.write(self._write_end, message + b"\0")
            os.close(self._write_end)
            self._write_end = None
            return True

    def stop(self) -> None:
        """Tell the watchdog we cleaned up ourselves, and wait for it to exit. Safe to call twice, from any thread."""
        if os.getpid() != self._owner:
            return
        self._close(b"stop")
        process, self._process = self._process, None
        if process is not None and not wait_exit(process, 5):
            process.kill()
            process.wait()

    def hand_over(self) -> None:
        """Leave the cleanup to the watchdog, as if we had died: for what we failed to remove ourselves.

        The watchdog is a process of its own, with its own descriptors: it can finish a removal that
        failed here for want of them (``EMFILE``). We do not wait for it.
        """
        if self._close(None):
            self._process = None

    def _forget_in_child(self) -> None:
        self._pipe_lock = threading.Lock()  # another thread of the parent may have held it at the fork
        if self._write_end is not None:
            with contextlib.suppress(OSError):
                os.close(self._write_end)
            self._write_end = None
        self._process = None


def _close_inherited_write_ends() -> None:
    for watchdog in list(_armed):
        watchdog._forget_in_child()


os.register_at_fork(after_in_child=_close_inherited_write_ends)
