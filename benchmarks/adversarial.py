"""Adversarial runs: owners killed at random moments, forks, two users on one port range, start storms.

    python benchmarks/adversarial.py [--iterations 500] [--only start_kill,...] [--out FILE.json]

Issue 17's scenarios: ``relative_chdir`` (a relative data_dir or state dir, then a chdir),
``impostor`` (another user answers as our member on our port), ``cluster_stop_during_start``,
``ctrl_c_in_start`` (SIGINT at random moments of start(), in a process that survives it),
``three_users`` (three uids on one 200-port range) and ``wrapper_daemon`` (a binary that runs
``setsid etcd "$@" &`` and exits). ``--iterations`` is each one's count.

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
#: The 200-port range three users share in ``three_users``.
THREE_USERS_RANGE = "22000-22199"

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
    from etcd_env._process.ports import port_is_reserved
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


RELATIVE_CHDIR = """
    import json, os, subprocess, sys, tempfile
    from pathlib import Path
    from etcd_env import EtcdServer
    base = Path(tempfile.mkdtemp(prefix="etcd-env-adv-chdir-"))
    removed, left_ours, errors = 0, 0, []
    for i in range({n}):
        started_in, elsewhere = base / f"a{{i}}", base / f"b{{i}}"
        started_in.mkdir()
        (elsewhere / "data").mkdir(parents=True)
        (elsewhere / "data" / "precious").write_text("x")
        os.chdir(started_in)
        relative_state = i % 2 == 1  # odd rounds: a relative ETCD_ENV_STATE_DIR as well
        if relative_state:
            os.environ["ETCD_ENV_STATE_DIR"] = "state"
        try:
            server = EtcdServer(data_dir="data")
            server.start()
            os.chdir(elsewhere)
            server.stop()
        except Exception as error:
            errors.append(type(error).__name__ + ": " + str(error).splitlines()[0][:120])
        removed += not (elsewhere / "data" / "precious").exists()
        left_ours += (started_in / "data").exists()
        if relative_state:
            check = subprocess.run([sys.executable, "-m", "etcd_env", "reap", "--dry-run", "--check"],
                                   cwd=started_in, capture_output=True, text=True)
            left_ours += check.returncode != 0
            os.environ["ETCD_ENV_STATE_DIR"] = {state!r}
    print(json.dumps({{"iterations": {n}, "user_files_removed": removed,
                      "our_data_or_records_left": left_ours, "errors": errors[:5]}}))
"""

IMPOSTOR = r"""
import http.server, json, os, sys, threading, time
state, round_file = sys.argv[1].encode(), sys.argv[2]
taken, last_round = set(), None

class Etcdish(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = {"/health": {"health": "true"}, "/v2/stats/self": {"name": self.server.member}}.get(self.path, {})
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass

print("watching", flush=True)
while True:
    try:
        with open(round_file) as f:
            current = f.read()
    except OSError:
        current = None
    if current == last_round:  # one port per start: the start's retry must then succeed
        time.sleep(0.001)
        continue
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if state not in b"\0".join(argv) or b"--name" not in argv or b"--listen-client-urls" not in argv:
            continue
        port = int(argv[argv.index(b"--listen-client-urls") + 1].decode().split(",")[0].rsplit(":", 1)[1])
        if port in taken:
            continue
        try:
            server = http.server.HTTPServer(("127.0.0.1", port), Etcdish)
        except OSError:
            continue
        server.member = argv[argv.index(b"--name") + 1].decode()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        taken.add(port)
        last_round = current
        break
"""

IMPOSTOR_OWNER = """
    import json, os, sys
    from pathlib import Path
    from etcd_env import EtcdServer

    def listening(port):
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for row in open(table).readlines()[1:]:
                f = row.split()
                if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(int(f[9]))
        return inodes

    def held(pid):
        links = [os.readlink(f"/proc/{{pid}}/fd/{{fd}}") for fd in os.listdir(f"/proc/{{pid}}/fd")]
        return {{int(link[8:-1]) for link in links if link.startswith("socket:[")}}

    round_file = Path(sys.argv[1])
    ready_on_impostor, ours, errors = 0, 0, []
    for i in range({n}):
        round_file.write_text(str(i))
        server = EtcdServer()
        try:
            server.start(timeout=20)
            if listening(server.get_port()) <= held(server.pid):
                ours += 1
            else:
                ready_on_impostor += 1
        except Exception as error:
            errors.append(type(error).__name__ + ": " + str(error).splitlines()[0][:120])
        server.stop()
    print(json.dumps({{"starts": {n}, "ready_on_impostor": ready_on_impostor, "ready_on_ours": ours,
                      "failed": len(errors), "error_samples": errors[:5]}}))
"""

# The scenarios' children count live etcds of their own state dir (by the --name etcd_env gives
# them; zombies are not alive): one definition, put into each child's script by format().
NAMED_ETCDS = """\
    def named():
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                argv = open(f"/proc/{entry}/cmdline", "rb").read()
                status = open(f"/proc/{entry}/stat", "rb").read().rsplit(b")", 1)[1].split()[0]
            except OSError:
                continue
            if state in argv and b"--name\\0" in argv and status != b"Z":
                found.append(int(entry))
        return found
"""


CLUSTER_STOP_DURING_START = """
    import json, os, random, threading, time
    from etcd_env import EtcdCluster
    state = os.environ["ETCD_ENV_STATE_DIR"].encode()

{named_etcds}
    chooser = random.Random(17)
    outcomes, left = {{}}, 0
    for _ in range({n}):
        cluster = EtcdCluster(3)
        result = []
        def start():
            try:
                cluster.start()
                result.append("ok")
            except BaseException as error:
                result.append(type(error).__name__)
        thread = threading.Thread(target=start)
        thread.start()
        time.sleep(chooser.uniform(0, 0.5))
        try:
            cluster.stop()
        except BaseException as error:
            result.append("stop:" + type(error).__name__)
        thread.join()
        alive = named()
        if alive:
            left += 1
            cluster.stop()
            for pid in named():
                os.kill(pid, 9)
        for item in result:
            outcomes[item] = outcomes.get(item, 0) + 1
    print(json.dumps({{"runs": {n}, "outcomes": outcomes, "clusters_left_running": left}}))
"""

WRAPPER_OWNER = """
    import json, os, shutil, tempfile, time
    from pathlib import Path
    from etcd_env import EtcdServer, resolve_binary
    real = str(resolve_binary(None).path)
    base = Path(tempfile.mkdtemp(prefix="etcd-env-adv-wrapper-"))
    wrapper = base / "daemonizing-etcd"
    wrapper.write_text('#!/bin/sh\\ncase "$1" in --version) exec ' + real + ' "$@" ;; esac\\n'
                       'setsid ' + real + ' "$@" > /dev/null 2>&1 &\\nsleep 0.3\\nexit 0\\n')
    wrapper.chmod(0o755)
    left, ready, errors = 0, 0, {{}}
    for i in range({n}):
        data = base / f"data{{i}}"
        data.mkdir()
        server = EtcdServer(binary=wrapper, data_dir=data)
        try:
            server.start(timeout=20)
            ready += 1
        except Exception as error:
            key = type(error).__name__
            errors[key] = errors.get(key, 0) + 1
        server.stop()
        time.sleep(0.5)
        marker = str(data).encode()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if marker in open(f"/proc/{{entry}}/cmdline", "rb").read():
                        left += 1
                        os.kill(int(entry), 9)
                except OSError:
                    pass
    # The data dirs are this script's (a user's): etcd_env rightly leaves them, so the script removes them.
    shutil.rmtree(base)
    print(json.dumps({{"starts": {n}, "ready": ready, "errors": errors, "etcd_left": left}}))
"""


def _child_report(code: str, env: dict[str, str], *args: str, timeout: float = 3600) -> dict[str, Any]:
    owner = _python(code, env, *args)
    out, err = owner.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {"owner_failed": err[-500:]}


def relative_chdir(state: Path, n: int) -> dict[str, Any]:
    code = textwrap.dedent(RELATIVE_CHDIR).format(n=n, state=str(state))
    return {**_child_report(code, _env(state)), **_settle(state, time.monotonic())}


def impostor(state: Path, n: int) -> dict[str, Any]:
    """A second user (uid 65534 when we are root) binds our client port as soon as etcd's command line shows it."""
    state.mkdir(parents=True, exist_ok=True)
    round_dir = Path(tempfile.mkdtemp(prefix="etcd-env-adv-round-"))
    round_dir.chmod(0o755)
    round_file = round_dir / "round"
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    as_nobody = nobody if os.getuid() == 0 and shutil.which("setpriv") else []
    python = "/usr/bin/python3" if as_nobody else sys.executable
    thief = subprocess.Popen(
        [*as_nobody, python, "-I", "-S", "-c", IMPOSTOR, str(state), str(round_file)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert thief.stdout is not None and thief.stdout.readline().strip() == "watching"
        report = _child_report(textwrap.dedent(IMPOSTOR_OWNER).format(n=n), _env(state), str(round_file))
    finally:
        thief.kill()
        thief.communicate()
        shutil.rmtree(round_dir, ignore_errors=True)
    return {"impostor_uid": 65534 if as_nobody else os.getuid(), **report, **_settle(state, time.monotonic())}


def cluster_stop_during_start(state: Path, n: int) -> dict[str, Any]:
    code = textwrap.dedent(CLUSTER_STOP_DURING_START.format(n=n, named_etcds=NAMED_ETCDS))
    return {**_child_report(code, _env(state)), **_settle(state, time.monotonic())}


CTRL_C_OWNER = """
    import json, os, random, signal, threading, time
    from etcd_env import EtcdServer
    state = os.environ["ETCD_ENV_STATE_DIR"].encode()

{named_etcds}
    chooser = random.Random(121)
    interrupted, leaks = 0, 0
    for _ in range({n}):
        server = EtcdServer()
        timer = threading.Timer(chooser.uniform(0, 0.1), os.kill, (os.getpid(), signal.SIGINT))
        in_start = False
        try:
            timer.start()  # inside: the interrupt may land while the timer thread starts
            in_start = True
            server.start()
            in_start = False
            time.sleep(0.2)
        except KeyboardInterrupt:
            interrupted += in_start
        timer.join()
        if not server.running and named():
            leaks += 1
            for pid in named():
                os.kill(pid, 9)
        try:
            server.stop()
        except KeyboardInterrupt:
            pass
    print(json.dumps({{"starts": {n}, "interrupted_inside_start": interrupted,
                      "etcd_left_unknown_to_the_object": leaks}}))
"""


def ctrl_c_in_start(state: Path, n: int) -> dict[str, Any]:
    code = textwrap.dedent(CTRL_C_OWNER.format(n=n, named_etcds=NAMED_ETCDS))
    return {**_child_report(code, _env(state)), **_settle(state, time.monotonic())}


def wrapper_daemon(state: Path, n: int) -> dict[str, Any]:
    code = textwrap.dedent(WRAPPER_OWNER).format(n=n)
    return {**_child_report(code, _env(state)), **_settle(state, time.monotonic())}


def three_users(state: Path, n: int) -> dict[str, Any]:
    """Three uids (ours, 65534, 65533), 16 processes each, on one 200-port range: ``n`` starts per user."""
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        return {"skipped": "needs root and setpriv for uids 65534 and 65533"}
    packages = sysconfig.get_paths()["purelib"]
    shared_range = {"ETCD_ENV_PORT_RANGE": THREE_USERS_RANGE}
    homes: dict[int, Path] = {}
    for uid in (65534, 65533):
        home = Path(tempfile.mkdtemp(prefix=f"etcd-env-adv-{uid}-", dir="/tmp"))
        os.chown(home, uid, uid)
        homes[uid] = home

    def env_for(index: int) -> tuple[dict[str, str], list[str]]:
        user = index % 3
        if user == 0:
            return _env(state, shared_range), []
        uid = (65534, 65533)[user - 1]
        env = _env(homes[uid] / "state", {**shared_range, "HOME": str(homes[uid]), "_PYTHON": "/usr/bin/python3 -S"})
        env["PYTHONPATH"] += os.pathsep + packages
        return env, ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]

    procs, rounds = 48, max(1, n // 16)
    try:
        result = _cyclers(procs, rounds, env_for)
        result.update({"processes": procs, "rounds_each": rounds, "port_range": THREE_USERS_RANGE})
        result.update(_settle(state, time.monotonic()))
        result["other_users_etcd_alive"] = sum(len(_etcds(home / "state")) for home in homes.values())
    finally:
        for home in homes.values():
            shutil.rmtree(home, ignore_errors=True)
    return result


SCENARIOS: dict[str, Callable[[Path, int], dict[str, Any]]] = {
    "start_kill": start_kill,
    "stop_kill": stop_kill,
    "cluster_start_kill": cluster_start_kill,
    "forks": forks,
    "two_users": two_users,
    "storm64": storm64,
    "relative_chdir": relative_chdir,
    "impostor": impostor,
    "cluster_stop_during_start": cluster_stop_during_start,
    "ctrl_c_in_start": ctrl_c_in_start,
    "three_users": three_users,
    "wrapper_daemon": wrapper_daemon,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--only", default=",".join(list(SCENARIOS)[:6]), help=f"any of {','.join(SCENARIOS)}")
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
