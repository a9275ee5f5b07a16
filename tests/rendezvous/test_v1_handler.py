"""torch's v1 ``etcd`` rendezvous handler (etcd_rendezvous.py): several agents, late joiners, timeouts.

Every test here runs under ``lease_failures``: on etcd 3.5 the handler's lease-refresh
thread for the run's TTL'd directory fails ("Not a file"); the fixture asserts that is
the only thread failure, and that there is none on etcd 3.4.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("torch", reason="torch is not installed: run `nox -s rendezvous_tests`, which installs it")

from torch.distributed.elastic.rendezvous import (
    RendezvousClosedError,
    RendezvousParameters,
    RendezvousTimeoutError,
)
from torch.distributed.elastic.rendezvous.etcd_rendezvous import create_rdzv_handler

pytestmark = pytest.mark.usefixtures("lease_failures")


def handler(server, run_id, *, min_nodes=1, max_nodes=1, timeout=60, last_call_timeout=1, **config):
    params = RendezvousParameters(
        backend="etcd",
        endpoint=server.get_endpoint(),
        run_id=run_id,
        min_nodes=min_nodes,
        max_nodes=max_nodes,
        timeout=timeout,
        last_call_timeout=last_call_timeout,
        local_addr="127.0.0.1",
        **config,
    )
    return create_rdzv_handler(params)


def rendezvous_all(handlers, timeout=60):
    with ThreadPoolExecutor(len(handlers)) as pool:
        futures = [pool.submit(h.next_rendezvous) for h in handlers]
        return [future.result(timeout=timeout) for future in futures]


def test_handler_with_minimal_and_additional_params(rdzv_server, run_ids):
    run_id = run_ids.new("params")
    rdzv = handler(rdzv_server, run_id, protocol="http")
    assert rdzv.get_run_id() == run_id
    assert rdzv.get_backend() == "etcd"
    assert not rdzv.is_closed()


def test_single_agent_rendezvous(rdzv_server, run_ids):
    info = handler(rdzv_server, run_ids.new("single")).next_rendezvous()
    assert (info.rank, info.world_size) == (0, 1)
    info.store.set("k", "v")
    assert info.store.get("k") == b"v"


def test_three_agents_get_distinct_ranks_and_share_a_store(rdzv_server, run_ids):
    run_id = run_ids.new("three")
    handlers = [handler(rdzv_server, run_id, min_nodes=2, max_nodes=3) for _ in range(3)]
    infos = rendezvous_all(handlers)
    assert sorted(info.rank for info in infos) == [0, 1, 2]
    assert {info.world_size for info in infos} == {3}
    infos[0].store.set("from-rank-0", "hello")
    assert all(info.store.get("from-rank-0") == b"hello" for info in infos)


def test_late_joiner_waits_then_a_new_round_admits_it(rdzv_server, run_ids):
    run_id = run_ids.new("late")
    first = [handler(rdzv_server, run_id, min_nodes=2, max_nodes=3) for _ in range(2)]
    round1 = rendezvous_all(first)
    assert sorted(info.rank for info in round1) == [0, 1]
    assert {info.world_size for info in round1} == {2}

    late = handler(rdzv_server, run_id, min_nodes=2, max_nodes=3)
    with ThreadPoolExecutor(1) as pool:
        joining = pool.submit(late.next_rendezvous)
        deadline = time.monotonic() + 30
        while first[0].num_nodes_waiting() < 1:
            assert not joining.done(), "the late joiner should wait for the next round, not join the closed one"
            assert time.monotonic() < deadline, "the late joiner never announced itself"
            time.sleep(0.05)
        # What an elastic agent does when it sees a waiting node: re-rendezvous.
        round2 = [*rendezvous_all(first), joining.result(timeout=60)]
    assert sorted(info.rank for info in round2) == [0, 1, 2]
    assert {info.world_size for info in round2} == {3}


def test_rendezvous_times_out_when_too_few_agents_come(rdzv_server, run_ids):
    lonely = handler(rdzv_server, run_ids.new("timeout"), min_nodes=2, max_nodes=2, timeout=2)
    began = time.monotonic()
    with pytest.raises(RendezvousTimeoutError):
        lonely.next_rendezvous()
    assert time.monotonic() - began >= 2


def test_a_closed_run_id_cannot_be_reused_on_the_same_server(rdzv_server, run_ids):
    run_id = run_ids.new("closed")
    first = handler(rdzv_server, run_id)
    first.next_rendezvous()
    assert first.shutdown()
    assert first.is_closed()
    # The state outlives the agents (a TTL of up to 2 h): a new job under this id is refused.
    with pytest.raises(RendezvousClosedError):
        handler(rdzv_server, run_id).next_rendezvous()
    # A fresh id on the same server is fine: that is why every test takes its own.
    info = handler(rdzv_server, run_ids.new("fresh")).next_rendezvous()
    assert info.world_size == 1


def test_agents_in_threads_see_each_other_concurrently(rdzv_server, run_ids):
    run_id = run_ids.new("concurrent")
    barrier = threading.Barrier(4)

    def agent():
        rdzv = handler(rdzv_server, run_id, min_nodes=4, max_nodes=4)
        barrier.wait(timeout=30)
        info = rdzv.next_rendezvous()
        info.store.add("joined", 1)
        return info

    with ThreadPoolExecutor(4) as pool:
        infos = [future.result(timeout=90) for future in [pool.submit(agent) for _ in range(4)]]
    assert sorted(info.rank for info in infos) == [0, 1, 2, 3]
    infos[0].store.wait(["joined"])
    assert int(infos[0].store.add("joined", 0)) == 4
