"""The lifecycle under attack, second round (issue 17): paths that move under a chdir, an impostor
on our port, a stop racing a cluster's start, Ctrl-C inside start(), locks held under load, a
wrapper that daemonizes etcd, and no file descriptors left.

Every test runs real etcd processes. The impostor is a separate Python process (uid 65534 when
we are root) that answers ``/health`` and ``/v2/stats/self`` as our etcd would: an adversary,
not a stand-in for etcd.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import etcd_env._server as server_module
from etcd_env import EtcdCluster, EtcdServer, EtcdStartError

from .conftest import live_processes_with, run_python, start_from_two_threads, wait_until, write_script

SETPRIV = shutil.which("setpriv")
LINUX = sys.platform.startswith("linux")


def _entries(state: Path) -> list[str]:
    servers = state / "servers"
    return sorted(entry.name for entry in servers.iterdir()) if servers.exists() else []


def _named_etcds(state: Path) -> list[int]:
    """Live processes that carry ``--name`` and ``state`` (the state or data dir): our etcds, or setpriv before exec."""
    return live_processes_with(str(state).encode(), b"--name\0")


def _listening_inodes(port: int) -> set[int]:
    """Read independently of etcd_env's readiness: the inodes of sockets listening on ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(int(fields[9]))
    return inodes


def _socket_inodes(pid: int) -> set[int]:
    links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
    return {int(link[8:-1]) for link in links if link.startswith("socket:[")}


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(pid, signal.SIGKILL)


# -- 1. paths made absolute once; only what we created is removed ------------------------------


def test_a_relative_data_dir_then_a_chdir_removes_ours_and_never_the_users(
    tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started_in, elsewhere = tmp_path / "started-in", tmp_path / "elsewhere"
    started_in.mkdir()
    (elsewhere / "data").mkdir(parents=True)
    precious = elsewhere / "data" / "precious.txt"
    precious.write_text("the user's")
    monkeypatch.chdir(started_in)
    server = EtcdServer(data_dir="data")
    server.start()
    try:
        assert server.data_dir == started_in / "data"
        server.get_client().write("/k", "v")
    finally:
        os.chdir(elsewhere)
        server.stop()
    assert precious.read_text() == "the user's", "stop() removed a directory it did not create"
    assert not (started_in / "data").exists(), "stop() left the data directory it created"
    assert _entries(state_dir) == []


def test_a_relative_state_dir_then_a_chdir_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started_in, elsewhere = tmp_path / "started-in", tmp_path / "elsewhere"
    started_in.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(started_in)
    monkeypatch.setenv("ETCD_ENV_STATE_DIR", "state")
    server = EtcdServer()
    server.start()
    try:
        os.chdir(elsewhere)
    finally:
        server.stop()
    assert _entries(started_in / "state") == [], "the record, its lock or its data outlived stop()"
    assert not (elsewhere / "state").exists()


def test_a_directory_put_where_ours_was_is_not_removed(tmp_path: Path, state_dir: Path) -> None:
    data_dir = tmp_path / "data"
    server = EtcdServer(data_dir=data_dir)
    server.start()
    try:
        # The directory we created is moved away and another takes its path: ours goes, not it.
        data_dir.rename(tmp_path / "moved")
        data_dir.mkdir()
        (data_dir / "precious.txt").write_text("the user's")
    finally:
        server.stop()
    assert (data_dir / "precious.txt").read_text() == "the user's", "stop() removed a directory by its name alone"
    assert _entries(state_dir) == []


# -- 2. an impostor on our port is a clash, never "ready" --------------------------------------

IMPOSTOR = r"""
import http.server, json, os, socket, sys, threading, time
state, steals = sys.argv[1].encode(), int(sys.argv[2])
marker = b"--listen-client-urls\0"
taken = set()

def look():
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
        name = argv[argv.index(b"--name") + 1].decode()
        url = argv[argv.index(b"--listen-client-urls") + 1].decode().split(",")[0]
        yield name, int(url.rsplit(":", 1)[1])

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
while len(taken) < steals:
    for name, port in look():
        if port in taken:
            continue
        try:
            server = http.server.HTTPServer(("127.0.0.1", port), Etcdish)
        except OSError:
            continue
        server.member = name
        threading.Thread(target=server.serve_forever, daemon=True).start()
        taken.add(port)
        print(port, flush=True)
    time.sleep(0.001)
sys.stdin.read()
"""


@pytest.mark.skipif(not LINUX, reason="the listener's owner is read from /proc (Linux only)")
def test_an_impostor_answering_as_our_member_is_never_ready(tmp_path: Path, state_dir: Path) -> None:
    real = os.environ["ETCD_ENV_BINARY"]
    # etcd a moment late, so that the impostor, which reads our port and name from the command
    # line, has bound the port first: what a patient local attacker achieves.
    slow = write_script(tmp_path / "slow-etcd", f'case "$1" in --version) ;; *) sleep 0.4 ;; esac\nexec {real} "$@"\n')
    as_nobody = [SETPRIV, "--reuid=65534", "--regid=65534", "--clear-groups"] if SETPRIV and os.getuid() == 0 else []
    python = "/usr/bin/python3" if as_nobody else sys.executable  # ours may live where uid 65534 cannot go
    impostor = subprocess.Popen(
        [*as_nobody, python, "-I", "-S", "-c", IMPOSTOR, str(state_dir), "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert impostor.stdout is not None and impostor.stdout.readline().strip() == "watching"
        with EtcdServer(binary=slow) as server:
            stolen = int(impostor.stdout.readline())
            assert server.get_port() != stolen, "start() returned ready on the impostor's port"
            listening = _listening_inodes(server.get_port())
            assert server.pid is not None and listening
            assert listening <= _socket_inodes(server.pid), "the port's listener is not our etcd"
            client = server.get_client()
            client.write("/k", "ours")
            assert client.read("/k").value == "ours"
    finally:
        impostor.kill()
        impostor.communicate()
    assert _entries(state_dir) == []
    assert _named_etcds(state_dir) == []


# -- 4. EtcdCluster: one start at a time; stop() waits for a start in progress -----------------


def test_cluster_stop_from_another_thread_during_start_leaves_nothing(state_dir: Path) -> None:
    for delay in (0.0, 0.05, 0.15, 0.3, 0.6):
        cluster = EtcdCluster(3)
        outcome: list[BaseException | None] = []

        def start(cluster: EtcdCluster = cluster, outcome: list[BaseException | None] = outcome) -> None:
            try:
                cluster.start(timeout=60)
            except BaseException as error:  # the outcome is the test's subject
                outcome.append(error)
            else:
                outcome.append(None)

        starter = threading.Thread(target=start)
        starter.start()
        time.sleep(delay)
        cluster.stop()
        starter.join()
        cluster.stop()  # what start() may have started after our stop() is gone now
        left = _named_etcds(state_dir)
        _kill_all(left)
        assert outcome == [None], f"start() with a stop() {delay}s in: {outcome}"
        assert left == [], f"a cluster member outlived stop() (stop {delay}s into start())"
        assert _entries(state_dir) == []


def test_two_threads_starting_one_cluster_one_wins(state_dir: Path) -> None:
    cluster = EtcdCluster(1)
    try:
        (error,) = start_from_two_threads(cluster.start)
        assert isinstance(error, RuntimeError)
        assert "another thread" in str(error) or "already started" in str(error)
    finally:
        cluster.stop()
    assert _entries(state_dir) == []


# -- 5. Ctrl-C inside start() in a process that survives it ------------------------------------

INTERRUPTED_STARTS = """
    import json, os, random, signal, sys, threading, time
    from etcd_env import {kind}
    state = os.environ["ETCD_ENV_STATE_DIR"].encode()

    def named_etcds():
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                argv = open(f"/proc/{{entry}}/cmdline", "rb").read()
                status = open(f"/proc/{{entry}}/stat", "rb").read().rsplit(b")", 1)[1].split()[0]
            except OSError:
                continue
            if state in argv and b"--name\\0" in argv and status != b"Z":
                found.append(int(entry))
        return found

    chooser = random.Random({seed})
    leaks, interrupted = [], 0
    for i in range({n}):
        server = {kind}({args})
        timer = threading.Timer(chooser.uniform(0, {window}), os.kill, (os.getpid(), signal.SIGINT))
        try:
            timer.start()  # inside: the interrupt may land while the timer thread starts
            server.start()
            time.sleep(2 * {window})  # an interrupt after start() returned lands here
        except KeyboardInterrupt:
            interrupted += 1
        timer.join()
        if not server.running:
            left = named_etcds()
            if left:
                leaks.append(left)
                for pid in left:
                    os.kill(pid, signal.SIGKILL)
        try:
            server.stop()
        except KeyboardInterrupt:
            pass
    print(json.dumps({{"leaks": leaks, "interrupted": interrupted}}), flush=True)
"""


@pytest.mark.parametrize(("kind", "args", "n", "window"), [("EtcdServer", "", 40, 0.1), ("EtcdCluster", "3", 12, 0.4)])
def test_ctrl_c_inside_start_leaves_no_etcd_the_object_does_not_know(
    kind: str, args: str, n: int, window: float, state_dir: Path
) -> None:
    code = INTERRUPTED_STARTS.format(kind=kind, args=args, n=n, window=window, seed=17)
    owner = run_python(code)
    out, err = owner.communicate(timeout=600)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, err[-2000:]
    report = json.loads(lines[-1])
    assert report["interrupted"] > 0, "no interrupt landed inside start(): the test tested nothing"
    assert report["leaks"] == [], f"{len(report['leaks'])} of {report['interrupted']} interrupts left an etcd running"
    wait_until(lambda: _entries(state_dir) == [], 10, "every record removed")


# -- 6. a name's lock held under load is a clash, retried under a fresh name -------------------

HOLD_LOCK = """
    import fcntl, os, sys
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_name_whose_lock_another_process_holds_is_retried_under_a_fresh_name(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = "etcd-env-held-by-another-process"
    servers = state_dir / "servers"
    with EtcdServer():
        pass  # the state dir's private layout now exists
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLD_LOCK), str(servers / f"{taken}.lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    real_name = server_module.new_member_name
    names = iter([taken])
    # The first name drawn is one whose lock a live process holds (as a slow reaper would):
    # only which name is drawn first is chosen here, everything else runs for real.
    monkeypatch.setattr(server_module, "new_member_name", lambda: next(names, None) or real_name())
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with EtcdServer() as server:
            assert server.name != taken
            server.get_client().write("/k", "v")
    finally:
        holder.kill()
        holder.communicate()


# -- 9. a wrapper that daemonizes etcd; no file descriptors left --------------------------------


@pytest.mark.parametrize("linger", ["sleep 2\n", ""], ids=["exits-after-etcd-answers", "exits-at-once"])
def test_a_wrapper_that_daemonizes_etcd_leaves_no_etcd_after_the_failed_start(
    tmp_path: Path, state_dir: Path, linger: str
) -> None:
    real = os.environ["ETCD_ENV_BINARY"]
    if shutil.which("setsid") is None:
        pytest.skip("no setsid (util-linux) on PATH to daemonize etcd with")
    # The daemon is in a session of its own before the wrapper exits: out of reach of our group.
    # It answers either while the wrapper still runs (`linger`) or only after it has exited.
    wrapper = write_script(
        tmp_path / "daemonizing-etcd",
        f'case "$1" in --version) exec {real} "$@" ;; esac\nsetsid {real} "$@" > /dev/null 2>&1 &\n{linger}exit 0\n',
    )
    data_dir = tmp_path / "data"  # the user's, so that nothing we remove stops the daemon for us
    data_dir.mkdir()
    with pytest.raises(EtcdStartError, match="left etcd running in the background") as caught:
        EtcdServer(binary=wrapper, data_dir=data_dir).start(timeout=30)
    assert 'exec etcd "$@"' in str(caught.value)
    time.sleep(0.5)
    left = _named_etcds(data_dir)
    _kill_all(left)
    assert left == [], "the etcd a wrapper daemonized outlived the failed start"
    assert _entries(state_dir) == []


RLIMIT_STARTS = """
    import json, os, resource
    from etcd_env import EtcdServer
    EtcdServer().start(); import etcd  # the client imported, the state dir made, before the limit
    base = len(os.listdir("/proc/self/fd"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    outcomes = []
    for extra in range(0, 10):
        resource.setrlimit(resource.RLIMIT_NOFILE, (base + extra, hard))
        server = EtcdServer()
        try:
            server.start(timeout=30)
            outcome = "started"
        except BaseException as error:
            outcome = type(error).__name__ + ": " + str(error)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        server.stop()
        outcomes.append(outcome)
    print(json.dumps(outcomes), flush=True)
"""


def test_out_of_file_descriptors_is_one_clear_error_and_leaves_nothing(state_dir: Path) -> None:
    owner = run_python(RLIMIT_STARTS)
    out, err = owner.communicate(timeout=300)
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert lines, err[-2000:]
    outcomes = json.loads(lines[-1])
    limited = [outcome for outcome in outcomes if outcome.startswith("ResourceLimitError")]
    assert limited, outcomes
    for outcome in limited:
        assert "RLIMIT_NOFILE" in outcome and "ulimit -n" in outcome
    raw = [outcome for outcome in outcomes if outcome.startswith("OSError")]
    assert raw == [], f"a raw OS error reached the caller: {raw}"
    wait_until(lambda: _entries(state_dir) == [], 15, f"nothing left in servers/ (left: {_entries(state_dir)})")
