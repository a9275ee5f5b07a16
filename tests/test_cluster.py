"""EtcdCluster against real etcd members: replication, faults, healing, the CLI, and cleanup.

Timings printed here (``-s`` or ``-rP`` shows them) are observations for the report;
the only time limits asserted are generous ones that prove nothing hangs.
"""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

import etcd
import pytest

import etcd_env
from etcd_env import ClusterUnavailableError, EtcdCluster, EtcdStartError
from etcd_env._process.ports import port_is_reserved
from etcd_env._process.status import member_status
from etcd_env.fixtures import etcd_cluster_proc
from tests.conftest import REPO, assert_gone, child_env, run_python, server_dirs, wait_until

#: "Nothing hangs" bound for a single operation; etcd's own request timeout is ~5.2 s.
HANG = 30.0

single_member_cluster = etcd_cluster_proc(members=1)


def _client_on(url: str, **options: object) -> etcd.Client:
    """A python-etcd client bound to exactly one member (no reconnecting elsewhere)."""
    parts = urlsplit(url)
    return etcd.Client(host=parts.hostname, port=parts.port, read_timeout=10, **options)


def _put(url: str, key: str, value: str, timeout: float) -> bool:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port or 0, timeout=timeout)
    try:
        connection.request(
            "PUT",
            f"/v2/keys{key}",
            body=f"value={value}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        response = connection.getresponse()
        response.read()
        return response.status in (200, 201)
    except OSError:
        return False
    finally:
        connection.close()


def _seconds_until_write(urls: list[str], key: str) -> float:
    """Time until a PUT through any of ``urls`` succeeds again (short tries, round robin)."""
    began = time.monotonic()
    attempt = 0
    while not _put(urls[attempt % len(urls)], key, "after", 0.05):
        attempt += 1
        assert time.monotonic() - began < HANG, f"writes did not resume within {HANG}s"
    return time.monotonic() - began


def _assert_all_gone(cluster_pids: list[int | None], state_dir) -> None:
    for pid in cluster_pids:
        assert pid is not None
        assert_gone(pid)
    assert etcd_env.find_leftovers() == []
    assert server_dirs(state_dir) == []


# -- start, replicate, stop ----------------------------------------------------------------


def test_three_members_replicate_and_leave_nothing(state_dir):
    cluster = EtcdCluster(3)
    assert cluster.client_urls == []  # no side effects before start()
    cluster.start()
    try:
        assert len(set(cluster.client_urls)) == 3
        assert all(url.startswith("http://127.0.0.1:") for url in cluster.client_urls)
        assert len({m.pid for m in cluster.members}) == 3 and cluster.running
        ports = [urlsplit(url).port for url in cluster.client_urls] + [
            urlsplit(m.peer_url).port for m in cluster.members
        ]
        assert len(set(ports)) == 6 and all(port_is_reserved(port) for port in ports)
        for writer, url in enumerate(cluster.client_urls):
            _client_on(url).write(f"/written-on-{writer}", str(writer))
        for url in cluster.client_urls:
            client = _client_on(url)
            assert [client.read(f"/written-on-{i}", quorum=True).value for i in range(3)] == ["0", "1", "2"]
        # Every member agrees on one leader, and leader() names it.
        statuses = [member_status(url, timeout=5) for url in cluster.client_urls]
        assert len({s.leader_id for s in statuses}) == 1
        assert statuses[cluster.leader()].is_leader
        assert cluster.get_client().read("/written-on-2").value == "2"
        pids = cluster.pids
    finally:
        cluster.stop()
    _assert_all_gone(pids, state_dir)
    assert not any(port_is_reserved(port) for port in ports)
    cluster.stop()  # twice is fine


def test_context_manager_and_environment(state_dir):
    with EtcdCluster(3) as cluster:
        env = cluster.environment()
        assert env["ETCDCTL_ENDPOINTS"].split(",") == cluster.client_urls
        assert env["ETCD_ENV_ENDPOINTS"].split(",") == cluster.client_urls
        assert env["ETCD_ENV_ENDPOINT"] == cluster.get_endpoint() == cluster.client_urls[0].split("://")[1]
        assert "ETCDCTL_CACERT" not in env
        assert "member 0" in cluster.log_tail(5) and "member 2" in cluster.log_tail(5)
        pids = cluster.pids
    _assert_all_gone(pids, state_dir)


def test_a_member_that_cannot_start_is_named_with_its_log(state_dir):
    cluster = EtcdCluster(3, extra_args=["--no-such-flag"])
    with pytest.raises(EtcdStartError) as caught:
        cluster.start(timeout=HANG)
    message = str(caught.value)
    assert "cluster member" in message and "exited with code" in message
    assert "no-such-flag" in caught.value.log_tail
    assert etcd_env.find_leftovers() == [] and server_dirs(state_dir) == []


def test_not_started_cluster_says_so():
    cluster = EtcdCluster(3)
    with pytest.raises(RuntimeError, match="not started"):
        cluster.kill_member(0)
    with pytest.raises(ValueError, match="at least one member"):
        EtcdCluster(0)


# -- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["leader", "follower"])
def test_writes_resume_after_a_member_is_killed(state_dir, role):
    with EtcdCluster(3) as cluster:
        leader = cluster.leader()
        victim = leader if role == "leader" else (leader + 1) % 3
        survivors = [url for i, url in enumerate(cluster.client_urls) if i != victim]
        assert _put(survivors[0], "/before", "x", 5)
        cluster.kill_member(victim)
        assert not cluster.member(victim).running
        resumed = _seconds_until_write(survivors, "/after")
        print(f"\nwrites resumed {resumed * 1000:.0f} ms after SIGKILL of the {role}")
        # The multi-member client keeps working, and a new leader is among the survivors.
        client = cluster.get_client()
        client.write("/through-client", "ok")
        assert client.read("/through-client").value == "ok"
        assert cluster.leader() != victim


def test_losing_quorum_fails_clearly_then_heals_with_data_intact(state_dir):
    with EtcdCluster(3) as cluster:
        cluster.get_client().write("/kept", "before")
        survivor = 2
        cluster.kill_member(0)
        cluster.kill_member(1)

        # etcd's own answer comes after its request timeout (5 s + 2 elections): python-etcd's
        # read_timeout must be longer to hear it instead of its own timeout.
        began = time.monotonic()
        with pytest.raises(etcd.EtcdException, match="timed out"):
            _client_on(cluster.client_urls[survivor]).write("/lost", "x")
        print(f"\nwrite without quorum failed after {time.monotonic() - began:.2f}s")
        assert time.monotonic() - began < HANG
        with pytest.raises(ClusterUnavailableError, match="needs 2"):
            cluster.leader(timeout=1)

        cluster.restart_member(0, wait=False)
        cluster.restart_member(1, wait=False)
        began = time.monotonic()
        cluster.wait_ready(timeout=HANG)
        print(f"healed {1000 * (time.monotonic() - began):.0f} ms after the restarts")
        assert cluster.running
        for url in cluster.client_urls:
            assert _client_on(url).read("/kept", quorum=True).value == "before"
        cluster.get_client().write("/after-heal", "yes")


def test_restarted_member_rejoins_with_its_data_and_catches_up(state_dir):
    with EtcdCluster(3) as cluster:
        follower = (cluster.leader() + 1) % 3
        before = cluster.member(follower)
        _client_on(before.client_url).write("/old", "1")
        cluster.kill_member(follower)
        cluster.get_client().write("/while-down", "2")
        cluster.restart_member(follower, timeout=HANG)
        after = cluster.member(follower)
        assert after.running and after.pid != before.pid
        assert after.data_dir == before.data_dir and after.client_url == before.client_url
        member = _client_on(after.client_url)
        assert member.read("/old", quorum=True).value == "1"
        assert member.read("/while-down", quorum=True).value == "2"
        assert member_status(after.client_url, timeout=5).leader_id != "0"


def test_stop_member_hands_over_leadership(state_dir):
    with EtcdCluster(3) as cluster:
        leader = cluster.leader()
        cluster.stop_member(leader)
        assert not cluster.member(leader).running
        assert cluster.leader(timeout=HANG) != leader
        cluster.get_client().write("/after-stop", "ok")
        cluster.restart_member(leader, timeout=HANG)
        assert cluster.running


def test_pause_and_resume_a_leader(state_dir):
    with EtcdCluster(3) as cluster:
        leader = cluster.leader()
        cluster.pause_member(leader)
        assert cluster.member(leader).paused and cluster.member(leader).running
        began = time.monotonic()
        new_leader = cluster.leader(timeout=HANG)
        print(f"\nnew leader {1000 * (time.monotonic() - began):.0f} ms after SIGSTOP of the leader")
        assert new_leader != leader
        survivors = [url for i, url in enumerate(cluster.client_urls) if i != leader]
        _seconds_until_write(survivors, "/while-paused")
        cluster.resume_member(leader)
        assert not cluster.member(leader).paused
        cluster.wait_ready(timeout=HANG)
        assert _client_on(cluster.client_urls[leader]).read("/while-paused", quorum=True).value == "after"


def test_stop_ends_paused_and_killed_members_too(state_dir):
    cluster = EtcdCluster(3)
    cluster.start()
    pids = cluster.pids
    cluster.pause_member(0)
    cluster.kill_member(1)
    began = time.monotonic()
    cluster.stop()
    assert time.monotonic() - began < HANG
    _assert_all_gone(pids, state_dir)


def test_owner_killed_leaves_nothing(state_dir):
    child = run_python(
        """
        import json, sys, time
        from etcd_env import EtcdCluster
        cluster = EtcdCluster(3)
        cluster.start()
        print(json.dumps(cluster.pids), flush=True)
        time.sleep(120)
        """
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line, child.stderr.read() if child.stderr else "no output"
    pids = json.loads(line)
    assert len(pids) == 3
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=HANG)
    child.stdout.close()
    if child.stderr is not None:
        child.stderr.close()
    for pid in pids:
        assert_gone(pid, timeout=10)
    wait_until(lambda: server_dirs(state_dir) == [], 10, "the watchdogs removed every member's directory")
    # Each watchdog removes its member's lock file last, a moment after the directory.
    servers = state_dir / "servers"
    wait_until(lambda: list(servers.iterdir()) == [], 10, "the watchdogs removed every member's lock file")
    assert etcd_env.find_leftovers() == []


# -- the CLI and the fixtures ------------------------------------------------------------------

_CHILD = """
import os, etcd
from urllib.parse import urlsplit
urls = os.environ["ETCDCTL_ENDPOINTS"].split(",")
assert os.environ["ETCD_ENV_ENDPOINTS"].split(",") == urls
assert os.environ["ETCD_ENV_ENDPOINT"] == urlsplit(urls[0]).netloc
clients = [etcd.Client(host=urlsplit(u).hostname, port=urlsplit(u).port) for u in urls]
for i, client in enumerate(clients):
    client.write(f"/cli/{i}", str(i))
expected = [str(i) for i in range(len(clients))]
for client in clients:
    assert [client.read(f"/cli/{i}", quorum=True).value for i in range(len(clients))] == expected
import json, urllib.request
names = {json.load(urllib.request.urlopen(u + "/v2/stats/self", timeout=10))["name"] for u in urls}
print(len(urls), len(names))
"""


def test_etcd_env_run_members_exports_every_member(state_dir):
    done = subprocess.run(
        [sys.executable, "-m", "etcd_env", "run", "--members", "3", "--", sys.executable, "-c", _CHILD],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
        env=child_env(),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "3"]  # 3 endpoints, 3 distinct members answered
    assert etcd_env.find_leftovers() == [] and server_dirs(state_dir) == []


def test_etcd_env_run_refuses_port_with_members(state_dir):
    done = subprocess.run(
        [sys.executable, "-m", "etcd_env", "run", "--members", "3", "--port", "2379", "--", "true"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 2
    assert "--port" in done.stderr and "--members" in done.stderr


def test_etcd_cluster_fixture(etcd_cluster):
    assert etcd_cluster.size == 3 and etcd_cluster.running
    old_leader = etcd_cluster.leader()
    etcd_cluster.kill_member(old_leader)
    # A write that reaches a follower before the next election is dropped by raft and
    # answered "request timed out" after ~5 s (etcd's behaviour): wait for the new leader.
    assert etcd_cluster.leader(timeout=HANG) != old_leader
    etcd_cluster.get_client().write("/fixture", "ok")


def test_cluster_fixture_factory_single_member(single_member_cluster):
    assert single_member_cluster.size == 1
    assert single_member_cluster.leader() == 0
    single_member_cluster.get_client().write("/one", "1")
