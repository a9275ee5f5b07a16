"""N processes starting a server at the same instant.

Each worker is a fresh interpreter that imports everything, says ``ready``, then
blocks reading a pipe. Closing the pipe's one write end wakes all of them at the
same moment: that is the barrier. A second pipe keeps every server up until all
have reported, so the N servers really run side by side.

Run as a script, this module is the worker: ``_concurrent.py etcd_env|torch GO_FD STOP_FD``.
torch's worker loads ``etcd_server.py`` from torch's directory by path: the very
same code, without paying a torch import in each of N processes.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _stats import summary

HERE = Path(__file__).resolve().parent


class _RetryCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.retries = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "retrying" in record.getMessage():
            self.retries += 1


def torch_etcd_server_path() -> Path | None:
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "distributed/elastic/rendezvous/etcd_server.py"
    return path if path.is_file() else None


def _server_class(kind: str) -> Any:
    if kind == "etcd_env":
        from etcd_env import EtcdServer  # noqa: PLC0415

        return EtcdServer
    path = torch_etcd_server_path()
    assert path is not None
    spec = importlib.util.spec_from_file_location("torch_etcd_server_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.EtcdServer


def worker(kind: str, go_fd: int, stop_fd: int) -> None:
    counter = _RetryCounter()
    logging.getLogger().addHandler(counter)
    server = _server_class(kind)()
    print("ready", flush=True)
    os.read(go_fd, 1)
    began = time.perf_counter()
    error = None
    try:
        server.start() if kind == "etcd_env" else server.start(stderr=subprocess.DEVNULL)
    except Exception as caught:  # a failure is a result to count here, not a crash
        error = f"{type(caught).__name__}: {caught}"[:300]
    elapsed = time.perf_counter() - began
    print(json.dumps({"start_s": elapsed, "error": error, "retries": counter.retries}), flush=True)
    os.read(stop_fd, 1)
    began = time.perf_counter()
    if error is None:
        server.stop()
    print(json.dumps({"stop_s": time.perf_counter() - began}), flush=True)


def run_once(kind: str, count: int, env: dict[str, str]) -> dict[str, Any]:
    go_read, go_write = os.pipe()
    stop_read, stop_write = os.pipe()
    workers = [
        subprocess.Popen(
            [sys.executable, str(HERE / "_concurrent.py"), kind, str(go_read), str(stop_read)],
            stdout=subprocess.PIPE,
            text=True,
            pass_fds=(go_read, stop_read),
            env=env,
        )
        for _ in range(count)
    ]
    os.close(go_read)
    os.close(stop_read)
    try:
        for process in workers:
            assert process.stdout is not None
            line = process.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"{kind} worker did not get ready: {line!r}")
        began = time.perf_counter()
        os.close(go_write)  # the barrier opens for all at once
        go_write = -1
        results = [json.loads(process.stdout.readline()) for process in workers if process.stdout is not None]
        wall = time.perf_counter() - began
        os.close(stop_write)
        stop_write = -1
        stops = [json.loads(process.stdout.readline()) for process in workers if process.stdout is not None]
    finally:
        for fd in (go_write, stop_write):
            if fd >= 0:
                os.close(fd)
        for process in workers:
            process.wait(timeout=120)
    errors = [row["error"] for row in results if row["error"]]
    return {
        "processes": count,
        "failures": len(errors),
        "errors": errors[:5],
        "retries": sum(row["retries"] for row in results),
        "wall_until_all_started_ms": round(wall * 1000, 1),
        "start": summary([row["start_s"] for row in results if not row["error"]]),
        "stop": summary([stop["stop_s"] for stop in stops]),
    }


def run(counts: list[int], *, with_torch: bool, binary_path: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    env["TORCHELASTIC_ETCD_BINARY_PATH"] = binary_path
    found: dict[str, Any] = {"etcd_env": {}, "torch": {}}
    for count in counts:
        print(f"  {count} concurrent starts: etcd_env", file=sys.stderr, flush=True)
        found["etcd_env"][str(count)] = run_once("etcd_env", count, env)
        if with_torch:
            print(f"  {count} concurrent starts: torch", file=sys.stderr, flush=True)
            found["torch"][str(count)] = run_once("torch", count, env)
    return found


if __name__ == "__main__":
    worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
