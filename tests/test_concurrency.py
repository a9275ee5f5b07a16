"""Many processes starting servers at the same instant: every one first time, no shared port."""

from __future__ import annotations

import json
import multiprocessing
import warnings
from pathlib import Path

from etcd_env import EtcdServer

from .conftest import server_dirs

PROCESSES = 32


def _start_one(start: object, done: object, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        server = EtcdServer()
        start.wait()  # type: ignore[attr-defined]
        try:
            server.start(timeout=120)
        except Exception as error:
            queue.put(json.dumps({"error": repr(error)}))
            return
        try:
            server.get_client().write(f"/who/{server.get_port()}", str(server.pid))
            peer = str(server.peer_url).rsplit(":", 1)[1]
            queue.put(json.dumps({"client": server.get_port(), "peer": int(peer), "warnings": len(caught)}))
            done.wait()  # type: ignore[attr-defined]
        finally:
            server.stop()


def test_32_processes_start_at_once_without_a_clash(state_dir: Path) -> None:
    context = multiprocessing.get_context("spawn")
    start, done = context.Barrier(PROCESSES), context.Barrier(PROCESSES + 1)
    queue = context.Queue()
    workers = [context.Process(target=_start_one, args=(start, done, queue)) for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    results = [json.loads(queue.get(timeout=300)) for _ in workers]
    errors = [result["error"] for result in results if "error" in result]
    if not errors:
        done.wait(timeout=60)  # every server is up at the same time before any stops
    for worker in workers:
        worker.join(timeout=120)
    assert errors == []
    ports = [result["client"] for result in results] + [result["peer"] for result in results]
    assert len(set(ports)) == 2 * PROCESSES, "two servers were handed the same port"
    assert sum(result["warnings"] for result in results) == 0, "a start needed a retry"
    assert all(worker.exitcode == 0 for worker in workers)
    assert server_dirs(state_dir) == []
