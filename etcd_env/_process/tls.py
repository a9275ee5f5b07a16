"""Throwaway TLS for a server or cluster: a CA, a server certificate, a client certificate.

Generated in memory by ``trustme`` (a maintained test-CA library on top of
``cryptography``), so nothing here is hand-rolled crypto. Only the files etcd and
its clients need are written, into the server's private (0700) record directory,
each 0600; they go when that directory goes. The CA's private key is never
written anywhere: nobody can mint another certificate this server would trust.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._common.environ import ETCDCTL_CACERT_VAR, ETCDCTL_CERT_VAR, ETCDCTL_KEY_VAR
from .._common.errors import EtcdEnvError
from .._common.paths import private_dir
from .command import TlsFiles

TLS_DIR = "tls"
#: The client certificate needs a subject alternative name (an empty SAN list is invalid);
#: ``.invalid`` is reserved (RFC 2606), so this name can never be a real host.
CLIENT_IDENTITY = "etcd-env-client.invalid"


@dataclass(frozen=True)
class ClientTls:
    """Where a client finds the CA to verify etcd and the certificate to present to it.

    Torch's ``etcd-v2`` backend takes these as ``ca_cert``, ``ssl_cert``,
    ``ssl_cert_key``; its older ``etcd`` handler as ``cacert``, ``cert``, ``key``.
    """

    ca: Path
    cert: Path
    key: Path

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.cert), str(self.key))
        return context

    def client_options(self) -> dict[str, Any]:
        """python-etcd ``Client`` keyword arguments."""
        return {"protocol": "https", "ca_cert": str(self.ca), "cert": (str(self.cert), str(self.key))}

    def environment(self) -> dict[str, str]:
        """What ``etcdctl`` reads to speak to this server."""
        return {ETCDCTL_CACERT_VAR: str(self.ca), ETCDCTL_CERT_VAR: str(self.cert), ETCDCTL_KEY_VAR: str(self.key)}


@dataclass(frozen=True)
class TlsWritten:
    """The files of one member: what etcd is given, and what its clients are given."""

    server: TlsFiles
    client: ClientTls


@dataclass(frozen=True, repr=False)
class TlsMaterial:
    """PEM bytes held in memory until written. ``repr`` is hidden: it holds private keys."""

    ca_pem: bytes
    server_cert_pem: bytes
    server_key_pem: bytes
    client_cert_pem: bytes
    client_key_pem: bytes

    def __repr__(self) -> str:
        return "<TlsMaterial (keys hidden)>"

    def write(self, record_root: Path) -> TlsWritten:
        """Write the files into ``record_root/tls`` (0700), each 0600, refusing to overwrite."""
        directory = private_dir(record_root / TLS_DIR)
        paths = {
            "ca.pem": self.ca_pem,
            "server.pem": self.server_cert_pem,
            "server-key.pem": self.server_key_pem,
            "client.pem": self.client_cert_pem,
            "client-key.pem": self.client_key_pem,
        }
        for name, content in paths.items():
            _write_private(directory / name, content)
        ca = directory / "ca.pem"
        return TlsWritten(
            server=TlsFiles(ca=ca, cert=directory / "server.pem", key=directory / "server-key.pem"),
            client=ClientTls(ca=ca, cert=directory / "client.pem", key=directory / "client-key.pem"),
        )


def _write_private(path: Path, content: bytes) -> None:
    # O_EXCL: a file planted there beforehand is an error, never silently reused.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)


def generate_tls(host: str) -> TlsMaterial:
    """A fresh CA, a server certificate for ``host`` (and the loopback names), and a client certificate."""
    try:
        import trustme  # noqa: PLC0415 - optional: only tls=True needs it
    except ImportError as error:
        raise EtcdEnvError(
            "tls=True needs the trustme package to make throwaway certificates. "
            "Install it with: pip install 'etcd-env[tls]'"
        ) from error
    identities = list(dict.fromkeys([host, "127.0.0.1", "::1", "localhost"]))
    authority = trustme.CA(organization_name="etcd-env throwaway CA")
    server = authority.issue_cert(*identities, common_name="etcd-env server")
    client = authority.issue_cert(CLIENT_IDENTITY, common_name="etcd-env client")
    return TlsMaterial(
        ca_pem=authority.cert_pem.bytes(),
        server_cert_pem=b"".join(blob.bytes() for blob in server.cert_chain_pems),
        server_key_pem=server.private_key_pem.bytes(),
        client_cert_pem=b"".join(blob.bytes() for blob in client.cert_chain_pems),
        client_key_pem=client.private_key_pem.bytes(),
    )
