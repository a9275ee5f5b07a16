"""Cheap per-test isolation on one server: know when nothing was written, delete only what was.

etcd's raft index moves on every write (v2 or v3, a TTL expiring, a lease ending) and on
nothing else a test does. One kept-alive ``POST /v3/maintenance/status`` (about 0.5 ms
on a local server) tells whether anyone wrote since the last look; only then are the
deletes sent, on the same connection. Reads never move the index, so a test that only
reads costs one request.

When something was written, each path is first looked up with a local read (about
0.2 ms) and deleted only if it exists: a delete is a raft proposal even for a missing
key (about 1 ms).

Both shortcuts are safe only where this process is the server's only writer and every
request reaches the same member: a server the process started (``EtcdServer``). On an
existing cluster others write too, and a member may lag behind a write made through
another, so :class:`KeyspaceTracker` is given ``track_writes=False`` there and always
sends every delete.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from ._http import connect

#: The whole v3 key space: from the empty key ("\0" as key and range end means "all keys").
_ALL_KEYS = {"key": base64.b64encode(b"\0").decode(), "range_end": base64.b64encode(b"\0").decode()}
#: A kept-alive connection the server closed while idle shows up as one of these on reuse.
_STALE_CONNECTION = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


def _prefix_range(prefix: str) -> dict[str, str]:
    key = prefix.encode()
    range_end = key[:-1] + bytes([key[-1] + 1])
    return {"key": base64.b64encode(key).decode(), "range_end": base64.b64encode(range_end).decode()}


class KeyspaceTracker:
    """One server's key space as the tests of one process see it, over one kept-alive connection."""

    def __init__(self, client_url: str, ssl_context: ssl.SSLContext | None, *, track_writes: bool) -> None:
        self.client_url = client_url
        self._ssl_context = ssl_context
        self._track_writes = track_writes
        self._connection: http.client.HTTPConnection | None = None
        self._clean_index: int | None = None
        self._seen_index: int | None = None

    # -- HTTP on one connection ----------------------------------------------------------

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
        payload = json.dumps(body).encode() if body is not None else None
        reused = self._connection is not None
        if self._connection is None:
            self._connection = connect(self.client_url, timeout=10, ssl_context=self._ssl_context)
        try:
            self._connection.request(method, path, body=payload)
            response = self._connection.getresponse()
            return response.status, response.read()
        except _STALE_CONNECTION:
            self.close()
            if not reused:
                raise
            # Only a connection that sat idle is retried, once, on a fresh one.
            return self._request(method, path, body)
        except BaseException:
            self.close()
            raise

    def _v3(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        status, answer = self._request("POST", path, body)
        if status != 200:
            raise OSError(f"{self.client_url}{path}: HTTP {status} {answer[:200]!r}")
        return dict(json.loads(answer))

    def _v2_exists(self, quoted: str) -> bool:
        status, answer = self._request("GET", f"/v2/keys/{quoted}")
        if status not in (200, 404):
            raise OSError(f"{self.client_url}/v2/keys/{quoted}: HTTP {status} {answer[:200]!r}")
        return status == 200

    def _v2_delete(self, path: str, *, known_to_exist: bool = False) -> None:
        quoted = quote(path.strip("/"))
        if self._track_writes and not known_to_exist and not self._v2_exists(quoted):
            return
        status, answer = self._request("DELETE", f"/v2/keys/{quoted}?recursive=true")
        # 404: nothing there (errorCode 100); anything else unexpected is an error.
        if status not in (200, 404):
            raise OSError(f"{self.client_url}/v2/keys/{quoted}: HTTP {status} {answer[:200]!r}")

    def _v3_delete(self, key_range: dict[str, str]) -> None:
        if self._track_writes:
            found = self._v3("/v3/kv/range", {**key_range, "count_only": True, "serializable": True})
            if not int(found.get("count", 0)):
                return
        self._v3("/v3/kv/deleterange", key_range)

    def raft_index(self) -> int:
        return int(self._v3("/v3/maintenance/status", {})["raftIndex"])

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # -- what the fixtures ask -------------------------------------------------------------

    def _written_since_last_look(self) -> bool:
        if not self._track_writes or self._seen_index is None:
            return True
        return self.raft_index() != self._seen_index

    def _looked(self) -> None:
        # After our own deletes (which move the index too): the index every later look compares with.
        self._seen_index = self.raft_index() if self._track_writes else None

    def delete(self, v2_paths: Iterable[str], v3_prefixes: Iterable[str]) -> bool:
        """Delete these v2 trees and v3 prefixes if anything was written since the last look; True if it did."""
        if not self._written_since_last_look():
            return False
        for path in v2_paths:
            self._v2_delete(path)
        for prefix in v3_prefixes:
            self._v3_delete(_prefix_range(prefix))
        self._looked()
        self._clean_index = None
        return True

    def make_clean(self) -> bool:
        """Empty the whole key space (v2 and v3) unless it is known to be empty still; True if it wiped."""
        if self._clean_index is not None and self._track_writes and self.raft_index() == self._clean_index:
            return False
        status, answer = self._request("GET", "/v2/keys/")
        if status != 200:
            raise OSError(f"{self.client_url}/v2/keys/: HTTP {status} {answer[:200]!r}")
        for node in json.loads(answer)["node"].get("nodes", []):
            self._v2_delete(node["key"], known_to_exist=True)
        self._v3_delete(_ALL_KEYS)
        self._looked()
        self._clean_index = self._seen_index
        return True
