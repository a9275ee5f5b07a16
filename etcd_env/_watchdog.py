"""Cleans up after an owner that died without stopping its server.

Run as a standalone script (``python -I -S _watchdog.py ...``, standard library
only, so it starts in milliseconds and does not need etcd_env importable). It
blocks reading a pipe whose write end only the owner holds. The owner writes a
byte when it stopped the server itself; end-of-file without that byte means the
owner died (SIGKILL included), and the watchdog kills etcd's process group and
removes the server's directories at once, instead of waiting for the next start
or ``etcd-env reap``.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _still_ours(pid: int, marker: str) -> bool:
    # The pid may have been reused by an unrelated process since etcd started.
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return marker.encode() in cmdline.read()
    except OSError:
        return sys.platform != "linux"


def main(argv: list[str]) -> int:
    read_fd, pgid, marker = int(argv[1]), int(argv[2]), argv[3]
    removable = argv[4:]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        message = os.read(read_fd, 1)
    except OSError:
        message = b""
    if message:
        # The owner waits for this exit in stop(): skip the interpreter's teardown (~3 ms).
        os._exit(0)
    if _group_alive(pgid) and _still_ours(pgid, marker):
        os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 2.0
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.01)
        if _group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
    for path in removable:
        shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
