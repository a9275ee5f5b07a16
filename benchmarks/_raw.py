"""The floor: etcd's own command line, launched raw, timed from spawn to its first healthy /health.

The command line is built by etcd_env's own ``MemberCommand`` (the same flags
``EtcdServer`` passes), with fresh reserved ports and a fresh data dir, so the
only difference from ``EtcdServer.start()`` is everything etcd_env does around
the spawn. The poll is as tight as a client can reasonably be (1 ms): etcd
refuses connects until it binds and then holds the request until it is ready,
so the loop only spins in the first ~20 ms.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from etcd_env import EtcdBinary, reserve_port
from etcd_env._process.command import MemberCommand


@dataclass
class RawEtcd:
    process: subprocess.Popen[bytes]
    data_root: Path
    client_port: int
    start_s: float


def healthy(port: int, timeout: float = 5.0) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/health")
        response = connection.getresponse()
        body = response.read()
    except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
        return False
    finally:
        connection.close()
    return response.status == 200 and json.loads(body).get("health") == "true"


def raw_command(binary: EtcdBinary, data_dir: Path, client_port: int, peer_port: int, name: str) -> list[str]:
    client_url = f"http://127.0.0.1:{client_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    return MemberCommand.single_member(binary, name, data_dir, client_url, peer_url).argv()


def start_raw(binary: EtcdBinary, parent: Path | None = None, *, timeout: float = 30.0) -> RawEtcd:
    """Spawn etcd with EtcdServer's flags and wait for a healthy /health; the ports stay reserved meanwhile."""
    with reserve_port() as client, reserve_port() as peer:
        root = Path(tempfile.mkdtemp(prefix="bench-raw-", dir=parent))
        argv = raw_command(binary, root / "data", client.port, peer.port, f"raw-{os.getpid()}-{client.port}")
        log = open(root / "etcd.log", "wb")  # noqa: SIM115
        began = time.perf_counter()
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = began + timeout
        while not healthy(client.port):
            if process.poll() is not None or time.perf_counter() > deadline:
                process.kill()
                process.wait()
                raise RuntimeError(f"raw etcd did not serve; log: {(root / 'etcd.log').read_text()[-2000:]}")
            time.sleep(0.001)
        elapsed = time.perf_counter() - began
    return RawEtcd(process, root, client.port, elapsed)


def stop_raw(raw: RawEtcd) -> tuple[float, float]:
    """(SIGTERM to exit, then rmtree of the data dir) in seconds."""
    began = time.perf_counter()
    os.killpg(raw.process.pid, signal.SIGTERM)
    raw.process.wait()
    exited = time.perf_counter()
    shutil.rmtree(raw.data_root)
    return exited - began, time.perf_counter() - exited
