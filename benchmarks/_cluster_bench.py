"""A 3-member cluster: time to start, and time until writes succeed again after a member is killed."""

from __future__ import annotations

import http.client
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from _stats import summary


def cluster_class() -> tuple[Any, str]:
    """etcd_env's EtcdCluster, or None and why the cluster rows are skipped."""
    try:
        from etcd_env import EtcdCluster  # noqa: PLC0415
    except ImportError as error:
        return None, f"etcd_env.EtcdCluster is not importable ({error})"
    return EtcdCluster, "etcd_env.EtcdCluster"


def _write(url: str, value: str, timeout: float) -> bool:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 2379, timeout=timeout)
    try:
        connection.request(
            "PUT",
            "/v2/keys/bench-resume",
            body=f"value={value}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        response = connection.getresponse()
        response.read()
    except OSError:
        return False
    finally:
        connection.close()
    return response.status in (200, 201)


def _resume_after_kill(cluster: Any, victim: int, survivor_url: str, timeout: float = 30.0) -> tuple[float, int]:
    """(seconds from the kill until a write through a survivor succeeds, failed attempts)."""
    if not _write(survivor_url, "before", 5.0):
        raise RuntimeError("the cluster did not take a write before the kill")
    began = time.perf_counter()
    cluster.kill_member(victim)
    failed = 0
    # A short per-attempt timeout: etcd holds a write during the election, and a long one
    # would round every figure up to it.
    while not _write(survivor_url, "after", 0.05):
        failed += 1
        if time.perf_counter() - began > timeout:
            raise RuntimeError(f"writes did not resume within {timeout}s after killing member {victim}")
        time.sleep(0.005)
    return time.perf_counter() - began, failed


def run(repeat: int) -> dict[str, Any]:
    cluster_type, why = cluster_class()
    if cluster_type is None:
        return {"skipped": why}
    starts: list[float] = []
    resumed: dict[str, list[float]] = {"leader": [], "follower": []}
    failed_writes: dict[str, int] = {"leader": 0, "follower": 0}
    for index in range(repeat):
        for role in ("leader", "follower"):
            cluster = cluster_type(members=3)
            began = time.perf_counter()
            cluster.start()
            starts.append(time.perf_counter() - began)
            try:
                leader = cluster.leader()
                victim = leader if role == "leader" else (leader + 1) % 3
                survivor = next(i for i in range(3) if i != victim)
                seconds, failed = _resume_after_kill(cluster, victim, cluster.client_urls[survivor])
                resumed[role].append(seconds)
                failed_writes[role] += failed
            finally:
                cluster.stop()
        print(f"\r  cluster repetition {index + 1}/{repeat}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return {
        "members": 3,
        "source": why,
        "start": summary(starts),
        "writes_resume_after_leader_kill": summary(resumed["leader"]),
        "writes_resume_after_follower_kill": summary(resumed["follower"]),
        "failed_write_attempts": failed_writes,
    }
