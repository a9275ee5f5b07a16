"""ExistingCluster: a running etcd checked and used, never started or stopped by us."""

from __future__ import annotations

import socket
import threading

import pytest

import etcd_env
from etcd_env import ClusterUnavailableError, EtcdServer, ExistingCluster


@pytest.fixture
def server(state_dir):
    # An explicit address: an existing cluster knows only its URLs, so it reports 127.0.0.1, not localhost.
    with EtcdServer(host="127.0.0.1") as running:
        yield running


def test_uses_endpoints_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("ETCD_ENV_ENDPOINTS", server.client_url)
    with ExistingCluster() as cluster:
        assert cluster.client_urls == [server.client_url]
        assert cluster.get_endpoint() == server.get_endpoint()
        assert (cluster.get_host(), cluster.get_port()) == (server.get_host(), server.get_port())
        cluster.get_client().write("/from-existing", "yes")
        assert server.get_client().read("/from-existing").value == "yes"
        assert cluster.environment() == server.environment()
    # stop() only forgot the endpoints: the server is still ours and still serving.
    assert server.running
    assert server.get_client().read("/from-existing").value == "yes"


def test_bare_host_port_means_http(server):
    cluster = ExistingCluster(server.get_endpoint())
    cluster.start()
    assert cluster.client_url == server.client_url


def test_unreachable_endpoint_is_named_with_the_fix(server):
    with etcd_env.reserve_port() as free:
        dead = f"http://127.0.0.1:{free.port}"
        cluster = ExistingCluster(f"{server.client_url},{dead}")
        with pytest.raises(ClusterUnavailableError) as caught:
            cluster.start()
    message = str(caught.value)
    assert dead in message
    assert f"{server.client_url}:" not in message  # the healthy one is not blamed
    # Named as given (an argument here), not as $ETCD_ENV_ENDPOINTS, which is unset.
    assert "fix the endpoints given to ExistingCluster" in message and "etcd-env up" in message
    assert "ETCD_ENV_ENDPOINTS" not in message
    assert not cluster.running


def test_a_non_etcd_listener_is_named():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def answer() -> None:
        connection, _ = listener.accept()
        connection.recv(1024)
        connection.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        connection.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        with pytest.raises(ClusterUnavailableError, match="not etcd"):
            ExistingCluster(f"http://127.0.0.1:{port}").start()
    finally:
        thread.join(timeout=5)
        listener.close()


@pytest.mark.parametrize("bad", ["", " , ", "ftp://h:1", "http://nohost", "http://h:notaport"])
def test_malformed_endpoints_are_refused(bad, monkeypatch):
    with pytest.raises(ValueError, match="the endpoints given to ExistingCluster"):
        ExistingCluster(bad).start()
    with pytest.raises(ValueError, match=r"(from|in) --endpoints"):
        ExistingCluster(bad, source="--endpoints").start()
    if bad.strip(" ,"):  # an empty variable means "not set": etcd_env starts its own server then
        monkeypatch.setenv("ETCD_ENV_ENDPOINTS", bad)
        with pytest.raises(ValueError, match=r"\$ETCD_ENV_ENDPOINTS"):
            ExistingCluster().start()


def test_accessors_before_start_say_what_to_do(server):
    with pytest.raises(RuntimeError, match="start"):
        _ = ExistingCluster(server.client_url).client_urls
