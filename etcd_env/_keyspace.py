"""Cheap per-test isolation on one server: look before deleting, on one kept-alive connection.

A delete is a raft proposal, even of a missing key (about 1 ms); a local read is about
0.2 ms. So each place a test may have written is first read, and deleted only if
something is there:

- v3: a ``count_only`` range over the prefix says whether any key is there;
- v2: a GET of the namespace's directory says whether it exists, and its
  ``X-Etcd-Index`` header (the v2 store's index, which every v2 write and TTL expiry
  moves) says whether anything was written in v2 at all since the last look. Only
  then are the other paths (torch's run paths, ``extra_paths``) looked up.

An empty test thus costs two reads. Reading our own writes back this way is exact only
where every request reaches the one member that took the writes: a server the process
started (``EtcdServer``). On an existing cluster a member may lag behind a write made
through another, so :class:`KeyspaceTracker` is given ``look_first=False`` there and
sends every delete.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from ._process.http import connect

#: The whole v3 key space: "\0" as key and range end means "all keys".
_ALL_KEYS = {"key": base64.b64encode(b"\0").decode(), "range_end": base64.b64encode(b"\0").decode()}
#: A kept-alive connection the server closed while idle shows up as one of these on reuse.
_STALE_CONNECTION = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


def _prefix_range(prefix: str) -> dict[str, str]:
    key = prefix.encode()
    range_end = key[:-1] + bytes([key[-1] + 1])
    return {"key": base64.b64encode(key).decode(), "range_end": base64.b64encode(range_end).decode()}


class KeyspaceTracker:
    """One server's key space as the tests of one process see it, over one kept-alive connection."""

    def __init__(self, client_url: str, ssl_context: ssl.SSLContext | None, *, look_first: bool) -> None:
        self.client_url = client_url
        self._ssl_context = ssl_context
        self._look_first = look_first
        self._connection: http.client.HTTPConnection | None = None
        #: The v2 store index after our last look (and our own deletes): unchanged means no v2 write since.
        self._v2_index: int | None = None

    # -- HTTP on one connection ----------------------------------------------------------

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, bytes, http.client.HTTPResponse]:
        payload = json.dumps(body).encode() if body is not None else None
        reused = self._connection is not None
        if self._connection is None:
            self._connection = connect(self.client_url, timeout=10, ssl_context=self._ssl_context)
        try:
            self._connection.request(method, path, body=payload)
            response = self._connection.getresponse()
            return response.status, response.read(), response
        except _STALE_CONNECTION:
            self.close()
            if not reused:
                raise
            # Only a connection that sat idle is retried, once, on a fresh one.
            return self._request(method, path, body)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _v2(self, method: str, path: str, query: str = "") -> tuple[bool, int]:
        """(found, the v2 index the answer carries) for ``path``; 404 is "not found", not an error."""
        quoted = quote(path.strip("/"))
        status, answer, response = self._request(method, f"/v2/keys/{quoted}{query}")
        if status not in (200, 404):
            raise OSError(f"{self.client_url}/v2/keys/{quoted}: HTTP {status} {answer[:200]!r}")
        return status == 200, int(response.getheader("X-Etcd-Index") or -1)

    def _v2_delete(self, path: str) -> int:
        return self._v2("DELETE", path, "?recursive=true")[1]

    def _v3(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        status, answer, _ = self._request("POST", path, body)
        if status != 200:
            raise OSError(f"{self.client_url}{path}: HTTP {status} {answer[:200]!r}")
        return dict(json.loads(answer))

    def _v3_delete(self, key_range: dict[str, str]) -> bool:
        if self._look_first:
            found = self._v3("/v3/kv/range", {**key_range, "count_only": True, "serializable": True})
            if not int(found.get("count", 0)):
                return False
        self._v3("/v3/kv/deleterange", key_range)
        return True

    # -- what the fixtures ask -------------------------------------------------------------

    def delete(self, v2_paths: Sequence[str], v3_prefixes: Sequence[str]) -> bool:
        """Delete these v2 trees and v3 prefixes where anything is there; True if anything was.

        ``v2_paths[0]`` is the namespace's own directory: reading it also tells whether
        anything at all was written in v2 since the last look, else the others are skipped.
        """
        deleted = False
        if not self._look_first:
            for path in v2_paths:
                self._v2_delete(path)
            for prefix in v3_prefixes:
                self._v3("/v3/kv/deleterange", _prefix_range(prefix))
            return True
        first, *others = v2_paths
        exists, seen = self._v2("GET", first)
        written_since = self._v2_index is None or seen != self._v2_index
        index = self._v2_delete(first) if exists else seen
        deleted |= exists
        if written_since:
            for path in others:
                exists, _ = self._v2("GET", path)
                if exists:
                    index = self._v2_delete(path)
                    deleted = True
        self._v2_index = index
        for prefix in v3_prefixes:
            deleted |= self._v3_delete(_prefix_range(prefix))
        return deleted

    def make_clean(self) -> bool:
        """Empty the whole key space (v2 and v3) where anything is in it; True if anything was."""
        status, answer, response = self._request("GET", "/v2/keys/")
        if status != 200:
            raise OSError(f"{self.client_url}/v2/keys/: HTTP {status} {answer[:200]!r}")
        index = int(response.getheader("X-Etcd-Index") or -1)
        nodes = json.loads(answer)["node"].get("nodes", [])
        for node in nodes:
            index = self._v2_delete(node["key"])
        self._v2_index = index
        return self._v3_delete(_ALL_KEYS) or bool(nodes)
