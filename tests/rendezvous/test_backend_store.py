"""torch's etcd-v2 rendezvous backend and EtcdStore against a real etcd."""

from __future__ import annotations

import datetime
import threading
import time
from base64 import b64encode

import pytest

pytest.importorskip("torch", reason="torch is not installed: run `nox -s rendezvous_tests`, which installs it")

from torch.distributed.elastic.rendezvous import (
    RendezvousConnectionError,
    RendezvousParameters,
    RendezvousStateError,
)
from torch.distributed.elastic.rendezvous.etcd_rendezvous_backend import (
    EtcdRendezvousBackend,
    create_backend,
)
from torch.distributed.elastic.rendezvous.etcd_store import EtcdStore

import etcd_env


@pytest.fixture
def backend(rdzv_server, run_ids):
    return EtcdRendezvousBackend(rdzv_server.get_client(), run_ids.new("backend"), "/torch/elastic/rendezvous")


def test_state_is_absent_until_set(backend):
    assert backend.get_state() is None


def test_set_creates_state(backend):
    state, token, has_set = backend.set_state(b"x")
    assert (state, has_set) == (b"x", True)
    assert backend.get_state() == (b"x", token)


def test_compare_and_set_with_the_current_token_wins(backend):
    _, token1, _ = backend.set_state(b"x")
    state, token2, has_set = backend.set_state(b"y", token1)
    assert (state, has_set) == (b"y", True)
    assert token2 != token1


def test_compare_and_set_with_a_stale_token_returns_the_current_state(backend):
    _, token1, _ = backend.set_state(b"x")
    _, token2, _ = backend.set_state(b"y", token1)
    state, token3, has_set = backend.set_state(b"z", token1)
    assert (state, token3, has_set) == (b"y", token2, False)


def test_create_without_token_when_state_exists_does_not_overwrite(backend):
    _, token1, _ = backend.set_state(b"x")
    assert backend.set_state(b"y") == (b"x", token1, False)


def test_invalid_token_returns_the_current_state(backend):
    _, token1, _ = backend.set_state(b"x")
    assert backend.set_state(b"y", token="not-a-number") == (b"x", token1, False)


def test_corrupt_state_is_reported(backend, rdzv_server, run_ids):
    rdzv_server.get_client().write(f"/torch/elastic/rendezvous/{run_ids.issued[0]}", "not base64!")
    with pytest.raises(RendezvousStateError):
        backend.get_state()


def test_concurrent_compare_and_set_has_exactly_one_winner(backend):
    _, token, _ = backend.set_state(b"0")
    results = []

    def contender(value: bytes) -> None:
        results.append(backend.set_state(value, token))

    threads = [threading.Thread(target=contender, args=(f"{i}".encode(),)) for i in range(1, 6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    winners = [result for result in results if result[2]]
    assert len(results) == 5
    assert len(winners) == 1
    assert backend.get_state() == winners[0][:2]


def _params(endpoint: str, run_id: str, **config: str) -> RendezvousParameters:
    return RendezvousParameters(backend="etcd-v2", endpoint=endpoint, run_id=run_id, min_nodes=1, max_nodes=1, **config)


def test_create_backend_writes_state_with_a_ttl_and_a_store(rdzv_server, run_ids):
    run_id = run_ids.new("create")
    backend, store = create_backend(_params(rdzv_server.get_endpoint(), run_id, protocol="hTTp", read_timeout="10"))
    assert backend.name == "etcd-v2"
    assert isinstance(store, EtcdStore)
    assert store.client.read_timeout == 10
    backend.set_state(b"dummy_state")
    client = rdzv_server.get_client()
    node = client.get(f"/torch/elastic/rendezvous/{run_id}")
    assert node.value == b64encode(b"dummy_state").decode()
    assert 0 < node.ttl <= 7200


def test_create_backend_on_an_unreachable_endpoint_fails_clearly():
    # A port reserved by etcd_env and never bound: nothing listens there.
    with etcd_env.reserve_port() as reservation, pytest.raises(RendezvousConnectionError):
        create_backend(_params(f"127.0.0.1:{reservation.port}", "unreachable"))


@pytest.fixture
def store(rdzv_server, run_ids):
    prefix = f"/torch/elastic/rendezvous/{run_ids.new('store')}/store"
    return EtcdStore(rdzv_server.get_client(), prefix, timeout=datetime.timedelta(seconds=10))


def test_store_set_get_bytes_and_str(store):
    store.set("key", "value")
    store.set(b"\x00binary", b"\xff\xfe")
    assert store.get("key") == b"value"
    assert store.get(b"\x00binary") == b"\xff\xfe"


def test_store_add_is_atomic_across_threads(store):
    assert store.add("counter", 5) == 5

    def bump() -> None:
        for _ in range(5):
            store.add("counter", 1)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert int(store.get("counter")) == 25


def test_store_wait_returns_once_another_thread_publishes(store):
    def publish() -> None:
        time.sleep(0.5)
        store.set("late", "here")

    publisher = threading.Thread(target=publish)
    publisher.start()
    began = time.monotonic()
    store.wait(["late"])
    publisher.join()
    assert time.monotonic() - began >= 0.4
    assert store.get("late") == b"here"
    assert store.check(["late"])


def test_store_wait_and_get_time_out_with_lookup_error(store):
    with pytest.raises(LookupError):
        store.wait(["never"], datetime.timedelta(seconds=0.5))
    store.set_timeout(datetime.timedelta(seconds=0.5))
    with pytest.raises(LookupError):
        store.get("never")
    assert not store.check(["never"])
