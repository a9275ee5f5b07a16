"""Asking one member who it is and whom it follows, through the v3 JSON gateway.

``POST /v3/maintenance/status`` answers with the member's own id, the leader it
knows and the raft term, on every etcd from 3.4 on and whether or not the v2 API
is enabled, so finding the leader does not depend on ``--enable-v2``.
"""

from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import dataclass

from .http import connect


@dataclass(frozen=True)
class MemberStatus:
    member_id: str
    leader_id: str
    raft_term: int

    @property
    def is_leader(self) -> bool:
        return self.leader_id != "0" and self.member_id == self.leader_id


def member_status(client_url: str, *, timeout: float, ssl_context: ssl.SSLContext | None = None) -> MemberStatus:
    """The status of the member at ``client_url``; raises ``OSError`` if it cannot answer in ``timeout``."""
    connection = connect(client_url, timeout=timeout, ssl_context=ssl_context)
    try:
        connection.request("POST", "/v3/maintenance/status", body=b"{}")
        response = connection.getresponse()
        body = response.read()
    except http.client.HTTPException as error:
        raise ConnectionError(f"{client_url}: {error!r}") from error
    finally:
        connection.close()
    if response.status != 200:
        raise ConnectionError(f"{client_url}/v3/maintenance/status answered HTTP {response.status}: {body[:200]!r}")
    answer = json.loads(body)
    # uint64 ids arrive as JSON strings; a missing leader (none elected) is omitted, i.e. 0.
    return MemberStatus(
        member_id=str(answer.get("header", {}).get("member_id", "0")),
        leader_id=str(answer.get("leader", "0")),
        raft_term=int(answer.get("raftTerm", answer.get("header", {}).get("raft_term", 0))),
    )
