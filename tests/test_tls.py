"""tls=True against a real etcd: https with client-certificate auth, private key files, cleanup."""

from __future__ import annotations

import http.client
import os
import ssl
import stat
import subprocess
import sys
from urllib.parse import urlsplit

import etcd
import pytest

import etcd_env
from etcd_env import EtcdCluster, EtcdEnvError, EtcdServer, ExistingCluster
from tests.conftest import server_dirs

pytest.importorskip("trustme", reason="trustme is absent: pip install 'etcd-env[tls]' (tests/test_tls.py needs it)")


def _get_health(url: str, context: ssl.SSLContext | None) -> tuple[int, bytes]:
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 0
    connection: http.client.HTTPConnection
    if context is None:
        connection = http.client.HTTPConnection(host, port, timeout=10)
    else:
        connection = http.client.HTTPSConnection(host, port, timeout=10, context=context)
    try:
        connection.request("GET", "/health")
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _assert_private(tls: etcd_env.ClientTls) -> None:
    assert stat.S_IMODE(tls.key.parent.stat().st_mode) == 0o700
    for path in tls.key.parent.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert sorted(p.name for p in tls.key.parent.iterdir()) == [
        "ca.pem",
        "client-key.pem",
        "client.pem",
        "server-key.pem",
        "server.pem",
    ]  # the CA's own key is never written


def test_server_serves_https_and_its_client_verifies(state_dir):
    with EtcdServer(tls=True) as server:
        tls = server.tls
        assert tls is not None
        assert server.client_url.startswith("https://127.0.0.1:")
        client = server.get_client()
        client.write("/secure", "yes")
        assert client.read("/secure").value == "yes"
        # Verified: the CA file plus the client certificate is what gets through.
        assert _get_health(server.client_url, tls.ssl_context())[0] == 200
        _assert_private(tls)
        env = server.environment()
        assert env["ETCDCTL_CACERT"] == str(tls.ca) and env["ETCDCTL_KEY"] == str(tls.key)
        assert env["ETCDCTL_ENDPOINTS"].startswith("https://")
        record = tls.key.parent.parent
        log_and_info = (record / "etcd.log").read_text() + (record / "info.json").read_text()
        assert "PRIVATE KEY" not in log_and_info
    assert not tls.key.exists() and not tls.ca.exists() and not record.exists()
    assert server_dirs(state_dir) == [] and etcd_env.find_leftovers() == []


def test_plain_http_and_unauthenticated_https_are_refused(state_dir):
    with EtcdServer(tls=True) as server:
        tls = server.tls
        assert tls is not None
        plain_url = server.client_url.replace("https://", "http://")
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
            _get_health(plain_url, None)
        # https that trusts the CA but shows no client certificate: etcd runs --client-cert-auth.
        with pytest.raises(ssl.SSLError):
            _get_health(server.client_url, ssl.create_default_context(cafile=str(tls.ca)))
        # A client that does not trust the throwaway CA refuses the server.
        with pytest.raises(ssl.SSLCertVerificationError):
            _get_health(server.client_url, ssl.create_default_context())
        # python-etcd without the CA and certificate cannot use it either.
        parts = urlsplit(server.client_url)
        with pytest.raises(etcd.EtcdException):
            etcd.Client(host=parts.hostname, port=parts.port, protocol="https", read_timeout=5).read("/")


def test_cluster_over_tls_replicates(state_dir):
    with EtcdCluster(3, tls=True) as cluster:
        tls = cluster.tls
        assert tls is not None
        assert all(url.startswith("https://") for url in cluster.client_urls)
        assert all(member.peer_url.startswith("https://") for member in cluster.members)
        for index, url in enumerate(cluster.client_urls):
            parts = urlsplit(url)
            etcd.Client(host=parts.hostname, port=parts.port, **tls.client_options()).write(f"/tls/{index}", "v")
        client = cluster.get_client()
        assert [client.read(f"/tls/{i}", quorum=True).value for i in range(3)] == ["v"] * 3
        _assert_private(tls)
        cluster.kill_member(cluster.leader())
        cluster.leader(timeout=30)
        client.write("/tls/after-kill", "ok")
        paths = [member.data_dir.parent / "tls" for member in cluster.members]
    assert not any(path.exists() for path in paths)
    assert server_dirs(state_dir) == [] and etcd_env.find_leftovers() == []


def test_missing_trustme_is_one_clear_error(state_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "trustme", None)  # what `import trustme` sees where it is absent
    with pytest.raises(EtcdEnvError, match=r"pip install 'etcd-env\[tls\]'"):
        EtcdServer(tls=True).start()
    assert server_dirs(state_dir) == []


def test_tls_material_repr_hides_keys():
    from etcd_env._process.tls import generate_tls  # noqa: PLC0415

    material = generate_tls("127.0.0.1")
    assert b"PRIVATE KEY" in material.server_key_pem
    assert "PRIVATE" not in repr(material) and "PRIVATE" not in str(material)


def test_run_tls_exports_certificates(state_dir, tmp_path):
    child = (
        "import os; print(os.environ['ETCDCTL_ENDPOINTS']); "
        "print(all(os.path.exists(os.environ[v]) for v in ('ETCDCTL_CACERT', 'ETCDCTL_CERT', 'ETCDCTL_KEY')))"
    )
    done = subprocess.run(
        [sys.executable, "-m", "etcd_env", "run", "--members", "3", "--tls", "--", sys.executable, "-c", child],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ},
    )
    assert done.returncode == 0, done.stderr
    urls, exists = done.stdout.split()
    assert urls.count("https://") == 3 and exists == "True"
    assert server_dirs(state_dir) == []


def test_existing_cluster_over_tls_from_etcdctl_variables(state_dir, monkeypatch):
    # What a command nested in `etcd-env run --tls` sees: https endpoints plus etcdctl's TLS variables.
    with EtcdServer(tls=True) as server:
        for name, value in server.environment().items():
            monkeypatch.setenv(name, value)
        with ExistingCluster() as existing:
            assert existing.client_url.startswith("https://")
            existing.get_client().write("/tls-existing", "ok")
            assert server.get_client().read("/tls-existing").value == "ok"
            assert existing.environment()["ETCDCTL_CACERT"] == str(server.tls.ca)
        monkeypatch.delenv("ETCDCTL_KEY")
        with pytest.raises(ValueError, match="go together"):
            ExistingCluster().start()


def test_namespace_cleanup_over_tls(state_dir):
    from etcd_env.fixtures import EtcdNamespace  # noqa: PLC0415 - the factory module, not a fixture

    with EtcdServer(tls=True) as server:
        namespace = EtcdNamespace(server=server, prefix="/etcd-env/tls/ns/", run_id="tls-ns")
        client = server.get_client()
        client.write(namespace.key("k"), "v")
        namespace.cleanup()
        with pytest.raises(etcd.EtcdKeyNotFound):
            client.read(namespace.prefix.rstrip("/"))
