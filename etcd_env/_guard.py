"""The owner's end of a server's watchdog (the watchdog itself is ``_watchdog.py``).

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
import weakref
from pathlib import Path

from ._process import wait_exit

_SCRIPT = str(Path(__file__).with_name("_watchdog.py"))

_armed: weakref.WeakSet[Watchdog] = weakref.WeakSet()


class Watchdog:
    """A running ``_watchdog.py`` for the etcd named ``name``, removing ``paths`` if we die."""

    def __init__(self, process: subprocess.Popen[bytes], write_end: int) -> None:
        self._process: subprocess.Popen[bytes] | None = process
        self._write_end: int | None = write_end
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
        if self._write_end is None or os.getpid() != self._owner:
            return
        # A dead watchdog (a teardown that killed every child) must not fail the owner's work.
        with contextlib.suppress(BrokenPipeError):
            os.write(self._write_end, message + b"\0")

    def spawning(self) -> None:
        self._send(b"spawn")

    def spawned(self, pid: int) -> None:
        self._send(b"pid=%d" % pid)

    def also_remove(self, path: Path) -> None:
        self._send(b"rm=" + os.fsencode(path))

    def stop(self) -> None:
        """Tell the watchdog we cleaned up ourselves, and wait for it to exit. Safe to call twice."""
        if os.getpid() != self._owner:
            return
        self._send(b"stop")
        if self._write_end is not None:
            os.close(self._write_end)
            self._write_end = None
        if self._process is not None:
            if not wait_exit(self._process, 5):
                self._process.kill()
                self._process.wait()
            self._process = None

    def _forget_in_child(self) -> None:
        if self._write_end is not None:
            with contextlib.suppress(OSError):
                os.close(self._write_end)
            self._write_end = None
        self._process = None


def _close_inherited_write_ends() -> None:
    for watchdog in list(_armed):
        watchdog._forget_in_child()


os.register_at_fork(after_in_child=_close_inherited_write_ends)
