"""One HTTP(S) or file:// download into an open file, hashed on the way, with a terminal progress bar.

The standard library's urllib only: the install path must not add a dependency.
``urllib.request`` is imported by :func:`download` itself, so that ``import etcd_env`` (every
pytest session with the plugin installed) does not load it; http.client is loaded anyway,
for the readiness probe every start makes.
"""

from __future__ import annotations

import hashlib
import http.client
import time
import urllib.parse
from dataclasses import dataclass
from typing import BinaryIO, TextIO

from .._common.environ import MIRROR_VAR
from .._common.errors import EtcdInstallError
from .._version import __version__

CHUNK = 1 << 16
#: Seconds without a byte before a download is given up (connect and each read).
STALL_TIMEOUT = 60


@dataclass(frozen=True)
class Downloaded:
    url: str
    size: int
    sha256: str
    seconds: float


class ProgressBar:
    """``name  12.3/21.5 MB [######----] 57%`` redrawn in place, at most ten times a second."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self._stream = stream
        self._label = label
        self._last = 0.0

    def update(self, done: int, total: int | None, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < 0.1:
            return
        self._last = now
        mb = f"{done / 1e6:.1f}"
        if total:
            filled = int(30 * done / total)
            bar = "#" * filled + "-" * (30 - filled)
            line = f"{self._label}  {mb}/{total / 1e6:.1f} MB [{bar}] {100 * done // total}%"
        else:
            line = f"{self._label}  {mb} MB"
        self._stream.write("\r" + line + ("\n" if final else ""))
        self._stream.flush()


def _unreachable(url: str, reason: object) -> EtcdInstallError:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return EtcdInstallError(
            f"cannot read {url}: {reason}. A file:// mirror must hold <mirror>/v<V>/etcd-v<V>-<os>-<arch>.tar.gz "
            "(.zip for darwin), laid out like the release downloads."
        )
    host = parts.netloc or url
    return EtcdInstallError(
        f"cannot download {url}: {reason}. No network to {host}, or a proxy in the way? "
        f"Use --mirror URL (or ${MIRROR_VAR}) to download from a mirror laid out like the release "
        "downloads (<mirror>/v<V>/etcd-v<V>-<os>-<arch>.tar.gz; file:// works for a local copy)."
    )


def download(url: str, sink: BinaryIO, *, progress: ProgressBar | None = None) -> Downloaded:
    """Copy ``url`` into ``sink``; raises :class:`EtcdInstallError` for anything but a complete body."""
    import urllib.error  # noqa: PLC0415 - kept out of `import etcd_env` (the module's docstring)
    import urllib.request  # noqa: PLC0415 - the same

    started = time.monotonic()
    request = urllib.request.Request(url, headers={"User-Agent": f"etcd-env/{__version__}"})  # noqa: S310
    try:
        response = urllib.request.urlopen(request, timeout=STALL_TIMEOUT)  # noqa: S310 (https, or the user's mirror)
    except urllib.error.HTTPError as error:
        hint = (
            "Is that a released etcd version, and does the mirror hold it?"
            if error.code == 404
            else "The server refused the download."
        )
        raise EtcdInstallError(f"cannot download {url}: HTTP {error.code} {error.reason}. {hint}") from error
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise _unreachable(url, getattr(error, "reason", error)) from error
    digest = hashlib.sha256()
    received = 0
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        try:
            while chunk := response.read(CHUNK):
                sink.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if progress is not None:
                    progress.update(received, total)
        except (http.client.HTTPException, TimeoutError, ConnectionError) as error:
            if progress is not None:
                progress.update(received, total, final=True)  # end the bar's line before the error
            raise EtcdInstallError(
                f"the download of {url} broke off after {received} bytes ({error!r}); nothing was cached. "
                "Run the install again."
            ) from error
    if progress is not None:
        progress.update(received, total, final=True)
    if total is not None and received != total:
        raise EtcdInstallError(
            f"the download of {url} ended after {received} of {total} bytes (the connection closed early); "
            "nothing was cached. Run the install again."
        )
    sink.flush()
    return Downloaded(url, received, digest.hexdigest(), time.monotonic() - started)
