"""``localhost``, as torch's EtcdServer reports it, works whichever loopback it resolves to."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import etcd
import pytest

from etcd_env import EtcdServer, PortBusyError, find_free_port, reserve_port, reserve_specific_port
from etcd_env._process.ports import ipv6_loopback_usable, listen_addresses

needs_ipv6 = pytest.mark.skipif(not ipv6_loopback_usable(), reason="::1 cannot be bound on this machine")


def health(address: str, port: int) -> bytes:
    host = f"[{address}]" if ":" in address else address
    with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=10) as response:
        return bytes(response.read())


def test_listen_addresses():
    assert listen_addresses("localhost")[0] == "127.0.0.1"
    assert listen_addresses("localhost")[1:] == (("::1",) if ipv6_loopback_usable() else ())
    assert listen_addresses("::1") == ("::1",)
    assert listen_addresses("127.0.0.1") == ("127.0.0.1",)


def test_default_server_serves_localhost_on_every_loopback(state_dir: Path):
    with EtcdServer() as server:
        port = server.get_port()
        assert (server.get_host(), server.get_endpoint()) == ("localhost", f"localhost:{port}")
        for address in listen_addresses("localhost"):
            assert b'"health":"true"' in health(address, port)
        # What torch's older test and its etcd-v2 backend do with get_host()/get_endpoint():
        etcd.Client(server.get_host(), port).write("/via-localhost", "yes")
        assert server.get_client().read("/via-localhost").value == "yes"
        assert server.client_url == f"http://127.0.0.1:{port}"


@needs_ipv6
def test_localhost_port_is_checked_free_on_ipv6_too(state_dir: Path):
    with reserve_port("localhost") as reservation:
        port = reservation.port
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as foreign:
        foreign.bind(("::1", port))
        foreign.listen(1)
        with pytest.raises(PortBusyError, match=r"127\.0\.0\.1 and ::1 is already in use"):
            reserve_specific_port(port, "localhost")
        # An IPv4-only server does not care who holds ::1.
        reserve_specific_port(port, "127.0.0.1").release()


@needs_ipv6
def test_explicit_ipv6_host_listens_there_alone(state_dir: Path):
    with EtcdServer(host="::1") as server:
        port = server.get_port()
        assert server.client_url == f"http://[::1]:{port}"
        assert b'"health":"true"' in health("::1", port)
        server.get_client().write("/v6", "yes")
        with pytest.raises(OSError):
            health("127.0.0.1", port)


def test_find_free_port_listens_on_localhost(state_dir: Path):
    sock = find_free_port()
    try:
        address, port = sock.getsockname()[:2]
        assert address in {info[4][0] for info in socket.getaddrinfo("localhost", None)}
        assert port > 0
    finally:
        sock.close()


def test_find_free_port_raises_runtime_error_when_nothing_can_be_bound(state_dir: Path, monkeypatch):
    with reserve_port("localhost") as reservation:
        port = reservation.port
    addresses = {(info[0], info[4][0]) for info in socket.getaddrinfo("localhost", None, type=socket.SOCK_STREAM)}
    foreign = [socket.socket(family, socket.SOCK_STREAM) for family, _ in addresses]
    try:
        for sock, (_, address) in zip(foreign, addresses, strict=True):
            sock.bind((address, port))
            sock.listen(1)
        # The only port etcd_env may choose is taken on every address localhost resolves to.
        monkeypatch.setenv("ETCD_ENV_PORT_RANGE", f"{port}-{port}")
        with pytest.raises(RuntimeError, match="Failed to create a socket on localhost"):
            find_free_port().close()
    finally:
        for sock in foreign:
            sock.close()
