"""Readiness: when is a just-spawned etcd serving, and is it the etcd we started?

A strategy apart from the process lifecycle (as in mirakuru's executors): the
lifecycle hands over a process and a deadline, the check answers or raises.
Before etcd binds its client port a connect is refused at once; after binding,
etcd holds a request until it can answer. So a short poll interval costs almost
nothing: the loop spins only in the ~20 ms before the bind.

"Our etcd" is proven, not assumed. Anyone can answer ``/health`` and echo our
member's name (it is in etcd's command line, which every local user can read),
and another user's program can bind our port first, outside our port locks.
So, after a healthy answer naming our member:

- on Linux, every socket listening on the client port must be held by our etcd:
  the inodes of the kernel's listening TCP sockets on that port (from sock_diag
  netlink, or ``/proc/net/tcp`` and ``tcp6``) must all be among the
  ``socket:[inode]`` links in ``/proc/<pid>/fd`` of the process we spawned or,
  for a wrapper binary that does not ``exec``, of a process in its process group
  (which no process of another session can join);
- with TLS, the server must present a certificate signed by the CA we generated
  (whose key never left our process) before anything is asked at all;
- elsewhere (no /proc, or one that hides our own process's descriptors) only the
  name is checked (``/v2/stats/self``, or the v3 member list).

A listener that fails a check is a :class:`ForeignListenerError`: a clash, which
the start retries on fresh ports, never "ready".
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from .._common.errors import EtcdStartError, EtcdStartTimeout, ForeignListenerError
from .http import connect

_LISTEN = "0A"  # the TCP state column of /proc/net/tcp*: TCP_LISTEN

# The kernel's socket-diagnostics netlink interface (linux/sock_diag.h, linux/inet_diag.h).
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_TCP_LISTEN = 10
_NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_DIAG_REQUEST = struct.Struct("=BBBBI48x")  # inet_diag_req_v2: family, protocol, ext, pad, states, sockid
_DIAG_SPORT_AT, _DIAG_INODE_AT = 4, 68  # offsets in inet_diag_msg: id.idiag_sport (big-endian), idiag_inode


def _listening_by_netlink(port: int) -> set[int]:
    """Ask the kernel (sock_diag) for its listening TCP sockets only: ~0.05 ms, where reading
    /proc/net/tcp walks every socket of the machine (27 ms with ~1400 of them, measured here)."""
    inodes: set[int] = set()
    for family in (socket.AF_INET, socket.AF_INET6):
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as netlink:
            request = _DIAG_REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_LISTEN)
            flags = _NLM_F_REQUEST | _NLM_F_DUMP
            header = _NLMSG_HEADER.pack(_NLMSG_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, flags, 1, 0)
            netlink.send(header + request)
            done = False
            while not done:
                data = netlink.recv(65536)
                offset = 0
                while offset + _NLMSG_HEADER.size <= len(data):
                    length, kind, _, _, _ = _NLMSG_HEADER.unpack_from(data, offset)
                    body = offset + _NLMSG_HEADER.size
                    if kind == _NLMSG_DONE:
                        done = True
                        break
                    if kind == _NLMSG_ERROR:
                        (code,) = struct.unpack_from("=i", data, body)
                        raise OSError(-code, f"sock_diag: {os.strerror(-code)}")
                    (sport,) = struct.unpack_from("!H", data, body + _DIAG_SPORT_AT)
                    if sport == port:
                        inodes.add(struct.unpack_from("=I", data, body + _DIAG_INODE_AT)[0])
                    offset += (length + 3) & ~3
    return inodes


def _listening_by_proc(port: int) -> set[int] | None:
    inodes: set[int] = set()
    tables = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as rows:
                next(rows, None)  # the header
                for row in rows:
                    fields = row.split()
                    # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
                    if len(fields) > 9 and fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(int(fields[9]))
        except FileNotFoundError:
            continue  # no IPv6 in this kernel: tcp6 is absent
        tables += 1
    return inodes if tables else None


def listening_socket_inodes(port: int) -> set[int] | None:
    """The inodes of every TCP socket listening on ``port`` (any address, IPv4 or IPv6); None where unknowable.

    From sock_diag netlink; where a sandbox refuses that, from /proc/net/tcp and tcp6 (the
    same table, read slower).
    """
    try:
        return _listening_by_netlink(port)
    except OSError:
        return _listening_by_proc(port)


def socket_inodes_of(pid: int) -> set[int] | None:
    """The inodes of the sockets process ``pid`` holds open (its ``/proc/<pid>/fd`` links).

    None where this /proc does not let us read them (a restricted mount); empty when ``pid`` is gone.
    """
    held: set[int] = set()
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except PermissionError:
        return None
    except OSError:
        return held
    for descriptor in descriptors:
        try:
            target = str(descriptor.readlink())
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            held.add(int(target[8:-1]))
    return held


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def foreign_listeners(pid: int, port: int) -> set[int] | None:
    """Inodes of sockets listening on ``port`` that neither ``pid`` nor its process group holds; None where unknowable.

    An empty set means every listener on the port is ours (and there is at least one).
    ``pid`` leads a process group of its own (etcd_env spawns it in a new session).
    """
    if not sys.platform.startswith("linux"):
        return None
    listening = listening_socket_inodes(port)
    if listening is None:
        return None
    if not listening:
        return {0}  # something answered, yet nothing listens in our network namespace
    held = socket_inodes_of(pid)
    if held is None:
        return None
    foreign = listening - held
    if foreign:  # the slow path: a wrapper's child may hold it
        for member in _group_members(pid):
            foreign -= socket_inodes_of(member) or set()
    return foreign


class ReadinessCheck(Protocol):
    def wait(self, process: subprocess.Popen[bytes], deadline: float, log_tail: Callable[[], str]) -> None:
        """Return once ready; raise :class:`EtcdStartError` if the process exits or the deadline passes."""


@dataclass
class HttpHealthCheck:
    """GET ``/health`` until it says true, then check the answer comes from member ``member_name``."""

    client_url: str
    member_name: str
    v2: bool = True
    ssl_context: ssl.SSLContext | None = None
    interval: float = 0.002

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        return connect(self.client_url, timeout=timeout, ssl_context=self.ssl_context)

    def _request(self, method: str, path: str, timeout: float, body: bytes | None = None) -> tuple[int, bytes]:
        connection = self._connection(timeout)
        try:
            connection.request(method, path, body=body)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def healthy_once(self, timeout: float) -> bool:
        """One probe: True if healthy, False if not yet; raises ForeignListenerError for a non-etcd answer."""
        try:
            status, body = self._request("GET", "/health", timeout)
        except (ConnectionRefusedError, ConnectionResetError, TimeoutError, http.client.RemoteDisconnected):
            return False
        except ssl.SSLError as error:
            raise ForeignListenerError(f"TLS handshake with {self.client_url} failed: {error}") from error
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or "health" not in answer:
            raise ForeignListenerError(
                f"{self.client_url}/health answered HTTP {status} with {body[:120]!r}, which is not etcd: "
                "another program is listening on this port."
            )
        return status == 200 and answer.get("health") in ("true", True)

    def _served_by_member(self, timeout: float) -> bool | None:
        """Whether the healthy listener is our member; None if it went away before answering."""
        try:
            if self.v2:
                status, body = self._request("GET", "/v2/stats/self", timeout)
                return status == 200 and json.loads(body).get("name") == self.member_name
            status, body = self._request("POST", "/v3/cluster/member/list", timeout, body=b"{}")
        except (ConnectionRefusedError, ConnectionResetError, TimeoutError, http.client.RemoteDisconnected):
            # Another user's etcd on our port can stop between the two requests: look again.
            return None
        except ValueError:
            return False
        members = json.loads(body).get("members", []) if status == 200 else []
        return any(member.get("name") == self.member_name for member in members)

    def _check_listener(self, pid: int, log_tail: Callable[[], str]) -> None:
        port = urlsplit(self.client_url).port
        foreign = foreign_listeners(pid, port) if port is not None else None
        if foreign:
            raise ForeignListenerError(
                f"{self.client_url} answered as member {self.member_name!r}, but the socket listening on "
                f"port {port} is not held by our etcd (pid {pid}): another program took the port.",
                log_tail=log_tail(),
            )

    def wait(self, process: subprocess.Popen[bytes], deadline: float, log_tail: Callable[[], str]) -> None:
        while True:
            returncode = process.poll()
            if returncode is not None:
                raise EtcdStartError(
                    f"etcd exited with code {returncode} before it was ready",
                    returncode=returncode,
                    log_tail=log_tail(),
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EtcdStartTimeout(
                    f"etcd was not healthy at {self.client_url} within the timeout; "
                    "give start() a longer timeout, or see etcd's log below for why it is stuck",
                    log_tail=log_tail(),
                )
            if self.healthy_once(min(remaining, 0.5)):
                served = self._served_by_member(max(0.5, deadline - time.monotonic()))
                if served:
                    self._check_listener(process.pid, log_tail)
                    return
                if served is False:
                    raise ForeignListenerError(
                        f"{self.client_url} is healthy but is not served by member {self.member_name!r}: "
                        "another etcd is listening on this port.",
                        log_tail=log_tail(),
                    )
            time.sleep(min(self.interval, max(0.0, deadline - time.monotonic())))
