"""An owner that dies by any means leaves no etcd, no data dir and no held reservation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from etcd_env import EtcdServer, find_leftovers, reap
from etcd_env._process.ports import port_is_reserved
from etcd_env._process.spawn import pid_alive

from .conftest import assert_gone, child_env, run_python, server_dirs, wait_until

OWNER = """
    import json, os, signal, sys, time
    from etcd_env import EtcdServer
    server = EtcdServer()
    server.start()
    peer = server._reservations[1].port
    print(json.dumps({{
        "etcd": server.pid, "client": server.get_port(), "peer": peer,
        "data": str(server.data_dir), "watchdog": server._member.record.watchdog.pid,
    }}), flush=True)
    {ending}
"""

ENDINGS = {
    "SIGKILL": "os.kill(os.getpid(), signal.SIGKILL)",
    "SIGTERM": "os.kill(os.getpid(), signal.SIGTERM); time.sleep(30)",
    "SIGINT": "time.sleep(30)",  # the test sends SIGINT: KeyboardInterrupt unwinds the owner
    "exception": "raise RuntimeError('the owner crashed')",
    "exit without stop": "sys.exit(3)",
}


def _start_owner(ending: str) -> tuple[subprocess.Popen[str], dict[str, object]]:
    owner = run_python(OWNER.format(ending=ending))
    assert owner.stdout is not None
    line = owner.stdout.readline()
    if not line:
        raise AssertionError(f"the owner did not start a server: {owner.communicate()[1]}")
    return owner, json.loads(line)


@pytest.mark.parametrize("how", list(ENDINGS))
def test_owner_death_leaves_nothing(how: str, state_dir: Path) -> None:
    owner, started = _start_owner(ENDINGS[how])
    if how == "SIGINT":
        owner.send_signal(signal.SIGINT)
    owner.communicate(timeout=30)
    etcd_pid, data = int(started["etcd"]), Path(str(started["data"]))  # type: ignore[call-overload]
    assert_gone(etcd_pid, timeout=2.0)
    wait_until(lambda: not data.exists(), 5.0, f"the data dir {data} should be removed")
    wait_until(lambda: server_dirs(state_dir) == [], 5.0, "no server directory may be left")
    servers = state_dir / "servers"
    wait_until(lambda: list(servers.iterdir()) == [], 5.0, "no lock file may be left either")
    for key in ("client", "peer"):
        assert not port_is_reserved(int(started[key])), f"{key} port still reserved"  # type: ignore[call-overload]
    assert find_leftovers() == []


def test_leftovers_of_an_owner_whose_watchdog_also_died_are_reaped(state_dir: Path) -> None:
    owner, started = _start_owner("time.sleep(60)")
    os.kill(int(started["watchdog"]), signal.SIGKILL)  # type: ignore[call-overload]
    owner.kill()
    owner.communicate(timeout=30)
    assert_gone(int(started["etcd"]), timeout=2.0)  # type: ignore[call-overload]
    leftovers = find_leftovers()
    assert [leftover.running for leftover in leftovers] == [False]
    listed = subprocess.run(
        [sys.executable, "-m", "etcd_env", "reap", "--dry-run", "--check"],
        capture_output=True, text=True, env=child_env(), check=False,
    )  # fmt: skip
    assert listed.returncode == 1 and "left over:" in listed.stdout
    assert [leftover.name for leftover in reap()] == [leftovers[0].name]
    assert server_dirs(state_dir) == []
    assert find_leftovers() == []


def test_next_start_reclaims_what_a_dead_owner_left(state_dir: Path) -> None:
    owner, started = _start_owner("time.sleep(60)")
    os.kill(int(started["watchdog"]), signal.SIGKILL)  # type: ignore[call-overload]
    owner.kill()
    owner.communicate(timeout=30)
    assert len(find_leftovers()) == 1
    with EtcdServer():
        assert find_leftovers() == []
        assert len(server_dirs(state_dir)) == 1  # only the live one
    assert pid_alive(int(started["etcd"])) is False  # type: ignore[call-overload]
