"""PyTorch elastic's etcd rendezvous on an EtcdCluster with a member down, and over TLS."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from etcd_env import EtcdCluster, EtcdServer
from tests.rendezvous.two_nodes import run_agents

pytest.importorskip("torch", reason="torch absent: pip install torch==2.13.0 (or run `nox -s rendezvous_tests`)")

from torch.distributed.elastic.rendezvous import RendezvousParameters
from torch.distributed.elastic.rendezvous.etcd_rendezvous_backend import create_backend
from torch.distributed.elastic.rendezvous.registry import get_rendezvous_handler

HANG = 30.0


def _run_id(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def _backend_round_trip(endpoint: str, **conf: str) -> None:
    """Store and read a rendezvous state through torch's etcd-v2 backend, and use its store."""
    params = RendezvousParameters(
        backend="etcd-v2", endpoint=endpoint, run_id=_run_id("backend"), min_nodes=1, max_nodes=2, **conf
    )
    backend, store = create_backend(params)
    assert backend.get_state() is None
    state, token, written = backend.set_state(b"first")
    assert written and state == b"first"
    _, _, overwritten = backend.set_state(b"second", token)
    assert overwritten
    assert backend.get_state()[0] == b"second"
    store.set("key", b"value")
    assert store.get("key") == b"value"


def _torchrun_pair(endpoint: str, out_dir: Path, rdzv_conf: str = "read_timeout=30") -> dict:
    """Two torchrun agents (--rdzv-backend=etcd-v2) running a checked gloo all_reduce."""
    codes, outputs = run_agents(endpoint, out_dir, _run_id("torchrun"), rdzv_conf, capture=True)
    assert codes == [0, 0], "torchrun agents failed:\n" + "\n".join(output[-3000:] for output in outputs)
    results = sorted(
        (r["rank"], r["world"], r["sum"]) for r in (json.loads(p.read_text()) for p in out_dir.glob("rank*.json"))
    )
    assert results == [(0, 2, 3.0), (1, 2, 3.0)]
    return {"codes": codes, "results": results}


@pytest.fixture
def cluster_with_leader_down():
    """A 3-member cluster whose leader was SIGKILLed and replaced; yields (cluster, a survivor's endpoint)."""
    with EtcdCluster(3) as cluster:
        leader = cluster.leader()
        cluster.kill_member(leader)
        # Raft drops writes that reach a follower before the next election (etcd answers
        # "request timed out" ~5 s later): start once the survivors have a leader.
        cluster.leader(timeout=HANG)
        survivor = (leader + 1) % 3
        yield cluster, cluster.client_urls[survivor].split("://", 1)[1]


def test_etcd_v2_backend_with_a_member_down(cluster_with_leader_down):
    _cluster, endpoint = cluster_with_leader_down
    _backend_round_trip(endpoint)


def test_torchrun_two_agents_complete_with_a_member_down(cluster_with_leader_down, tmp_path):
    cluster, endpoint = cluster_with_leader_down
    began = time.monotonic()
    _torchrun_pair(endpoint, tmp_path)
    print(f"\ntwo-agent torchrun job on 2 of 3 members: {time.monotonic() - began:.1f}s")
    assert sum(member.running for member in cluster.members) == 2


def test_torchrun_two_agents_through_etcd_env_run_members(tmp_path):
    two_nodes = Path(__file__).with_name("two_nodes.py")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "etcd_env",
            "run",
            "--members",
            "3",
            "--",
            sys.executable,
            str(two_nodes),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["exit_codes"] == [0, 0]


# -- TLS: torch's two option spellings -----------------------------------------------------


@pytest.fixture(scope="module")
def tls_server():
    pytest.importorskip("trustme", reason="trustme absent: pip install 'etcd-env[tls]'")
    with EtcdServer(tls=True) as server:
        yield server


def test_etcd_v2_backend_over_tls(tls_server):
    tls = tls_server.tls
    _backend_round_trip(
        tls_server.get_endpoint(),
        protocol="https",
        ca_cert=str(tls.ca),
        ssl_cert=str(tls.cert),
        ssl_cert_key=str(tls.key),
    )


def test_etcd_v2_backend_over_tls_without_certificates_fails(tls_server):
    from torch.distributed.elastic.rendezvous import RendezvousConnectionError  # noqa: PLC0415

    params = RendezvousParameters(
        backend="etcd-v2",
        endpoint=tls_server.get_endpoint(),
        run_id=_run_id("nocert"),
        min_nodes=1,
        max_nodes=1,
        protocol="https",
        read_timeout=5,
    )
    with pytest.raises(RendezvousConnectionError):
        create_backend(params)[0].get_state()


def test_dynamic_rendezvous_completes_over_tls(tls_server):
    tls = tls_server.tls
    params = RendezvousParameters(
        backend="etcd-v2",
        endpoint=tls_server.get_endpoint(),
        run_id=_run_id("tls-rdzv"),
        min_nodes=1,
        max_nodes=1,
        local_addr="127.0.0.1",
        protocol="https",
        ca_cert=str(tls.ca),
        ssl_cert=str(tls.cert),
        ssl_cert_key=str(tls.key),
    )
    handler = get_rendezvous_handler(params)
    try:
        info = handler.next_rendezvous()
        assert (info.rank, info.world_size) == (0, 1)
    finally:
        handler.shutdown()


def test_v1_handler_client_over_tls(tls_server):
    """The older ``etcd`` handler spells the options cacert/cert/key; its client must verify too."""
    from torch.distributed.elastic.rendezvous.etcd_rendezvous import _create_etcd_client  # noqa: PLC0415

    tls = tls_server.tls
    params = RendezvousParameters(
        backend="etcd",
        endpoint=tls_server.get_endpoint(),
        run_id=_run_id("v1"),
        min_nodes=1,
        max_nodes=1,
        protocol="https",
        cacert=str(tls.ca),
        cert=str(tls.cert),
        key=str(tls.key),
    )
    client = _create_etcd_client(params)
    client.write("/v1-over-tls", "ok")
    assert client.read("/v1-over-tls").value == "ok"


def test_torchrun_two_agents_over_tls_cluster(tmp_path):
    pytest.importorskip("trustme", reason="trustme absent: pip install 'etcd-env[tls]'")
    with EtcdCluster(3, tls=True) as cluster:
        tls = cluster.tls
        assert tls is not None
        conf = f"read_timeout=30,protocol=https,ca_cert={tls.ca},ssl_cert={tls.cert},ssl_cert_key={tls.key}"
        _torchrun_pair(cluster.get_endpoint(), tmp_path, conf)
