"""The reference module's functions, with their meaning kept."""

from __future__ import annotations

import shutil
import socket
import subprocess

from ._ports import reserve_port


def find_free_port() -> socket.socket:
    """A listening socket on 127.0.0.1 bound to a free port; close it right before using the port.

    Unlike the reference's ``bind(0)``, the port comes from outside the kernel's
    ephemeral range, and no other etcd_env process is handed it meanwhile.
    """
    with reserve_port("127.0.0.1") as reservation:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", reservation.port))
            sock.listen(0)
        except BaseException:
            sock.close()
            raise
    return sock


def stop_etcd(subprocess_: subprocess.Popen[bytes] | None, data_dir: str | None = None, *, grace: float = 5.0) -> None:
    """Terminate an etcd process (SIGKILL after ``grace`` seconds) and remove ``data_dir``."""
    if subprocess_ is not None and subprocess_.poll() is None:
        subprocess_.terminate()
        try:
            subprocess_.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            subprocess_.kill()
            subprocess_.wait()
    if data_dir:
        shutil.rmtree(data_dir, ignore_errors=True)
