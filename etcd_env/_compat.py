"""The reference module's functions, with their meaning kept."""

from __future__ import annotations

import shutil
import socket
import subprocess

from ._common.errors import PortExhaustedError
from ._process.ports import LOCALHOST, reserve_port_where


def _listening_socket(family: int, kind: int, proto: int, address: str) -> socket.socket:
    """A socket listening on ``address`` at a port reserved for it; raises OSError if none can be bound."""
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

        def bind(port: int) -> bool:
            # The socket itself is the probe: a failed bind leaves it unbound, free to try the next port.
            try:
                sock.bind((address, port))
            except OSError:
                return False
            return True

        with reserve_port_where(bind, address):
            sock.listen(0)
    except BaseException:
        sock.close()
        raise
    return sock


def find_free_port() -> socket.socket:
    """A listening socket on a free ``localhost`` port; close it right before using the port.

    As the reference does, every address ``localhost`` resolves to is tried in turn, and
    ``RuntimeError`` is raised when no socket can be made on any of them. Unlike its
    ``bind(0)``, the port comes from outside the kernel's ephemeral range, and no other
    etcd_env process is handed it meanwhile.
    """
    errors: list[str] = []
    for family, kind, proto, _, sockaddr in socket.getaddrinfo(
        LOCALHOST, None, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM
    ):
        try:
            return _listening_socket(family, kind, proto, str(sockaddr[0]))
        except (OSError, PortExhaustedError) as error:
            errors.append(f"{sockaddr[0]}: {error}")
    raise RuntimeError(f"Failed to create a socket on {LOCALHOST}: {'; '.join(errors) or 'it resolves to nothing'}")


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
