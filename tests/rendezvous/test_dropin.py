"""etcd_env.EtcdServer as a drop-in for torch's EtcdServer, in the shapes torch's own tests use.

torch's tests (test/distributed/elastic/rendezvous/etcd_server_test.py,
etcd_rendezvous_test.py, etcd_rendezvous_backend_test.py) import
``torch.distributed.elastic.rendezvous.etcd_server.EtcdServer`` and call ``start()``,
``start(stderr=subprocess.DEVNULL)``, ``get_endpoint()``, ``get_client()``, ``stop()``.
Here the class is substituted in torch's module and the same calls run against it;
each test also runs on the reference class, so a difference shows up side by side.
"""

from __future__ import annotations

import subprocess

import pytest

pytest.importorskip("torch", reason="torch is not installed: run `nox -s rendezvous_tests`, which installs it")

import etcd
import torch.distributed.elastic.rendezvous.etcd_server as torch_etcd_server
from torch.distributed.elastic.rendezvous import RendezvousParameters
from torch.distributed.elastic.rendezvous.etcd_rendezvous import create_rdzv_handler
from torch.distributed.elastic.rendezvous.etcd_rendezvous_backend import create_backend

import etcd_env

REFERENCE = torch_etcd_server.EtcdServer


@pytest.fixture(params=["etcd_env", "torch"])
def server_class(request, monkeypatch):
    """torch's module attribute, as torch's tests see it: etcd_env's class, or the reference."""
    if request.param == "etcd_env":
        monkeypatch.setattr(torch_etcd_server, "EtcdServer", etcd_env.EtcdServer)
    else:
        monkeypatch.setenv("TORCHELASTIC_ETCD_BINARY_PATH", etcd_env.resolve_binary().path)
    return torch_etcd_server.EtcdServer


@pytest.fixture
def started(server_class):
    server = server_class()
    server.start(stderr=subprocess.DEVNULL)
    yield server
    server.stop()


def test_start_stop_and_accessors(started, server_class):
    port, host = started.get_port(), started.get_host()
    assert port > 0
    assert started.get_endpoint() == f"{host}:{port}"
    assert started.get_client().version
    # Both say "localhost"; etcd_env listens on 127.0.0.1 and ::1, so it works whichever that resolves to.
    assert host == "localhost"


def test_server_with_v1_rendezvous(started, lease_failures, run_ids):
    params = RendezvousParameters(
        backend="etcd",
        endpoint=started.get_endpoint(),
        run_id=run_ids.new("dropin"),
        min_nodes=1,
        max_nodes=1,
        timeout=60,
        last_call_timeout=30,
        local_addr="127.0.0.1",
    )
    info = create_rdzv_handler(params).next_rendezvous()
    assert info.store is not None
    assert (info.rank, info.world_size) == (0, 1)


def test_create_backend_on_the_server(started, run_ids):
    run_id = run_ids.new("dropin-backend")
    params = RendezvousParameters(
        backend="etcd-v2", endpoint=started.get_endpoint(), run_id=run_id, min_nodes=1, max_nodes=1, read_timeout="10"
    )
    backend, store = create_backend(params)
    backend.set_state(b"state")
    store.set("key", "value")
    assert backend.get_state()[0] == b"state"
    assert store.get("key") == b"value"


def test_stop_leaves_nothing_running(server_class):
    server = server_class()
    server.start(stderr=subprocess.DEVNULL)
    client = server.get_client()
    client.write("/alive", "yes")
    server.stop()
    with pytest.raises(etcd.EtcdConnectionFailed):
        server.get_client().read("/alive")
