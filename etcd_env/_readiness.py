"""Readiness: when is a just-spawned etcd serving, and is it the etcd we started?

A strategy apart from the process lifecycle (as in mirakuru's executors): the
lifecycle hands over a process and a deadline, the check answers or raises.
Before etcd binds its client port a connect is refused at once; after binding,
etcd holds a request until it can answer. So a short poll interval costs almost
nothing: the loop spins only in the ~20 ms before the bind.
"""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ._errors import EtcdStartError, EtcdStartTimeout, ForeignListenerError
from ._http import connect


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
                    return
                if served is False:
                    raise ForeignListenerError(
                        f"{self.client_url} is healthy but is not served by member {self.member_name!r}: "
                        "another etcd is listening on this port.",
                        log_tail=log_tail(),
                    )
            time.sleep(min(self.interval, max(0.0, deadline - time.monotonic())))
