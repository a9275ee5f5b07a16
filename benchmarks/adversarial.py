"""Adversarial runs: owners killed at random moments, forks, two users on one port range, start storms.

    python benchmarks/adversarial.py [--iterations 500] [--only start_kill,...] [--out FILE.json]

Each scenario runs in a state dir of its own and reports, per scenario: iterations,
etcd processes alive 3 s after the last owner died, what is left in ``servers/``
once every watchdog has finished (entries and bytes), and what ``etcd-env reap
--dry-run --check`` still sees. No reap runs before those counts are taken: what
is counted is what the death signal and the watchdogs alone cleaned.
The second user is uid 65534 via ``setpriv`` (root only).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PARALLEL = 4
#: The port range both users share in ``two_users`` (--port-range): small, so that they clash.
PORT_RANGE = ["21000-21047"]

START_OWNER = """
    import sys
    from etcd_env import {kind}
    server = {kind}({args})
    print("starting", flush=True)
    server.start()
    print("started", flush=True)
    sys.stdin.readline()
"""

STOP_OWNER = """
    import sys
    from etcd_env import EtcdServer
    server = EtcdServer()
    server.start()
    print("started", flush=True)
    sys.stdin.readline()
    print("stopping", flush=True)
    server.stop()
    print("stopped", flush=True)
    sys.stdin.readline()
"""

FORKER = """
    import json, os, sys
    from etcd_env import EtcdServer
    from etcd_env._ports import port_is_reserved
    failures = []
    for i in range({n}):
        server = EtcdServer()
        server.start()
        client = server.get_client()
        client.write("/k", str(i))
        child = os.fork()
        if child == 0:
            if i % 2:
                raise RuntimeError("an uncaught exception in the child")
            sys.exit(0)
        os.waitpid(child, 0)
        try:
            ok = client.read("/k").value == str(i) and server.running
            ok = ok and all(port_is_reserved(r.port) for r in server._reservations)
        except Exception as error:
            ok = False
        if not ok:
            failures.append(i)
        server.stop()
    print(json.dumps({{"iterations": {n}, "failures": failures}}))
"""

CYCLER = """
    import json, sys, time
    from etcd_env import EtcdServer
    start_at = float(sys.argv[1])
    time.sleep(max(0.0, start_at - time.time()))
    outcomes = []
    for _ in range({rounds}):
        try:
            with EtcdServer() as server:
                server.get_client().write("/k", "v")
            outcomes.append("ok")
        except Exception as error:
            in_use = "address already in use" in getattr(error, "log_tail", "")
            clash = " [log: address already in use]" if in_use else ""
            outcomes.append(type(error).__name__ + ": " + str(error).splitlines()[0][:160] + clash)
    print(json.dumps(outcomes))
"""


def _env(state: Path | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_ENV_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    if state is not None:
        env["ETCD_ENV_STATE_DIR"] = str(state)
    env.update(extra or {})
    return env


def _python(code: str, env: dict[str, str], *args: str, prefix: list[str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*(prefix or []), *env.pop("_PYTHON", sys.executable).split(), "-c", textwrap.dedent(code), *args],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if text.encode() not in (entry / "cmdline").read_bytes():
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            found.append(int(entry.name))
    return found


def _etcds(state: Path) -> list[int]:
    found = []
    for pid in _mentioning(f"{state}/servers/"):
        try:
            argv = (Path(f"/proc/{pid}/cmdline")).read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--name" in argv:  # etcd, or setpriv about to exec it; a watchdog has the name without the flag
            found.append(pid)
    return found


def _left(state: Path) -> dict[str, Any]:
    servers = state / "servers"
    entries, size = 0, 0
    if servers.exists():
        for root, dirs, files in os.walk(servers):
            for name in dirs + files:
                entries += 1
                with contextlib.suppress(OSError):
                    size += os.lstat(os.path.join(root, name)).st_size if name in files else 0
    return {"entries": entries, "bytes": size}


def _reap_check(state: Path, env_prefix: list[str] | None = None, env: dict[str, str] | None = None) -> int:
    env = dict(env or _env(state))
    python = env.pop("_PYTHON", sys.executable).split()
    result = subprocess.run(
        [*(env_prefix or []), *python, "-m", "etcd_env", "reap", "--dry-run", "--check"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.count("left over:")


def _settle(state: Path, last_death: float) -> dict[str, Any]:
    """The counts: etcd alive 3 s after the last death, then what the watchdogs left."""
    time.sleep(max(0.0, last_death + 3.0 - time.monotonic()))
    alive = _etcds(state)
    deadline = time.monotonic() + 60
    while _mentioning(f"{state}/servers/") and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _left(state)
    return {
        "etcd_alive_3s_later": len(alive),
        "watchdog_or_etcd_still_running_after_60s": len(_mentioning(f"{state}/servers/")),
        "left_in_servers_after_watchdogs": left,
        "reap_check_leftovers": _reap_check(state),
    }


def _killed_during(state: Path, iterations: int, code: str, window: tuple[float, float], marker: str) -> dict[str, Any]:
    """``iterations`` owners, each SIGKILLed at a random moment ``window`` seconds after printing ``marker``."""
    chooser = random.SystemRandom()
    outcome = {"finished_before_kill": 0, "errors": 0}
    lock = threading.Lock()
    last_death = [time.monotonic()]

    def one(_: int) -> None:
        owner = _python(code, _env(state))
        assert owner.stdout is not None and owner.stdin is not None
        line = owner.stdout.readline().strip()
        if marker == "stopping":  # the owner waits for a line before it stops
            if line != "started":
                with lock:
                    outcome["errors"] += 1
                owner.kill()
                owner.communicate()
                return
            owner.stdin.write("\n")
            owner.stdin.flush()
            line = owner.stdout.readline().strip()
        if line != marker:
            with lock:
                outcome["errors"] += 1
        time.sleep(chooser.uniform(*window))
        owner.kill()
        out, _ = owner.communicate()
        with lock:
            last_death[0] = time.monotonic()
            if ("started" if marker == "starting" else "stopped") in out:
                outcome["finished_before_kill"] += 1

    with ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(one, range(iterations)))
    return {"iterations": iterations, **outcome, **_settle(state, last_death[0])}


def start_kill(state: Path, n: int) -> dict[str, Any]:
    return {
        "kill_window_ms": [0, 80],
        **_killed_during(state, n, START_OWNER.format(kind="EtcdServer", args=""), (0, 0.08), "starting"),
    }


def stop_kill(state: Path, n: int) -> dict[str, Any]:
    return {"kill_window_ms": [0, 40], **_killed_during(state, n, STOP_OWNER, (0, 0.04), "stopping")}


def cluster_start_kill(state: Path, n: int) -> dict[str, Any]:
    code = START_OWNER.format(kind="EtcdCluster", args="3")
    return {"kill_window_ms": [0, 400], **_killed_during(state, n, code, (0, 0.4), "starting")}


def forks(state: Path, n: int) -> dict[str, Any]:
    owner = _python(FORKER.format(n=n), _env(state))
    out, err = owner.communicate()
    lines = [line for line in out.splitlines() if line.startswith("{")]
    report = json.loads(lines[-1]) if lines else {"iterations": n, "failures": ["owner failed: " + err[-300:]]}
    return {**report, **_settle(state, time.monotonic())}


def _cyclers(procs: int, rounds: int, env_for: Callable[[int], tuple[dict[str, str], list[str]]]) -> dict[str, Any]:
    start_at = time.time() + 3.0 + procs * 0.05
    owners = []
    for index in range(procs):
        env, prefix = env_for(index)
        owners.append(_python(CYCLER.format(rounds=rounds), env, str(start_at), prefix=prefix))
    outcomes: list[str] = []
    retries = 0
    for owner in owners:
        out, err = owner.communicate()
        retries += err.count("retrying on fresh ports")
        lines = [line for line in out.splitlines() if line.startswith("[")]
        outcomes += json.loads(lines[-1]) if lines else ["owner failed: " + err[-200:]]
    failures = [outcome for outcome in outcomes if outcome != "ok"]
    return {
        "starts": len(outcomes),
        "failures": len(failures),
        "failure_samples": failures[:5],
        "port_retries": retries,
    }


def two_users(state: Path, n: int) -> dict[str, Any]:
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        return {"skipped": "needs root and setpriv for uid 65534"}
    other = Path(tempfile.mkdtemp(prefix="etcd-env-adv-nobody-", dir="/tmp"))
    os.chown(other, 65534, 65534)
    nobody_state = other / "state"
    shared_range = {"ETCD_ENV_PORT_RANGE": PORT_RANGE[0]}
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

    # Our interpreter may live where uid 65534 cannot reach (/root): the system's 3.11, with our
    # checkout and this environment's packages on its path, runs the second user's processes.
    packages = sysconfig.get_paths()["purelib"]

    def env_for(index: int) -> tuple[dict[str, str], list[str]]:
        if index % 2:
            env = _env(nobody_state, {**shared_range, "HOME": str(other), "_PYTHON": "/usr/bin/python3 -S"})
            env["PYTHONPATH"] += os.pathsep + packages
            return env, nobody
        return _env(state, shared_range), []

    procs, rounds = 16, max(1, n // 16)
    try:
        result = _cyclers(procs, rounds, env_for)
        result.update({"processes": procs, "rounds_each": rounds, "port_range": shared_range["ETCD_ENV_PORT_RANGE"]})
        result.update(_settle(state, time.monotonic()))
        result["second_user"] = {
            "etcd_alive": len(_etcds(nobody_state)),
            "left_in_servers": _left(nobody_state),
            "reap_check_leftovers": _reap_check(nobody_state, nobody, env_for(1)[0]),
        }
    finally:
        shutil.rmtree(other, ignore_errors=True)
    return result


def storm64(state: Path, n: int) -> dict[str, Any]:
    rounds = max(1, n // 64)
    result = _cyclers(64, rounds, lambda _: (_env(state), []))
    return {"processes": 64, "rounds_each": rounds, **result, **_settle(state, time.monotonic())}


SCENARIOS: dict[str, Callable[[Path, int], dict[str, Any]]] = {
    "start_kill": start_kill,
    "stop_kill": stop_kill,
    "cluster_start_kill": cluster_start_kill,
    "forks": forks,
    "two_users": two_users,
    "storm64": storm64,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--out", default=str(HERE / "results" / "adversarial.json"))
    parser.add_argument("--port-range", default=PORT_RANGE[0], help="two_users: the range both users share")
    parser.add_argument("--key", default="", help="store results under NAME+KEY, to keep runs apart")
    args = parser.parse_args()
    PORT_RANGE[0] = args.port_range
    out = Path(args.out)
    results: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    base = Path(tempfile.mkdtemp(prefix="etcd-env-adversarial-"))
    try:
        for name in args.only.split(","):
            began = time.monotonic()
            state = base / name
            print(f"{name}: {args.iterations} iterations ...", flush=True)
            result = SCENARIOS[name](state, args.iterations)
            result["wall_s"] = round(time.monotonic() - began, 1)
            result["load_average_after"] = round(os.getloadavg()[0], 2)
            result["date_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            print(json.dumps(result), flush=True)
            results[name + args.key] = result
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(results, indent=1) + "\n")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
