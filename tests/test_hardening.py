"""What an attacker or an unlucky user does: forks, planted symlinks, dead owners, lost ports, racing threads.

Every test runs real etcd processes; the second user is uid 65534 via ``setpriv``.
"""

from __future__ import annotations

import http.server
import json
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from etcd_env import EtcdCluster, EtcdServer, HostNotLocalError, StateDirError, find_leftovers, reap
from etcd_env._common.paths import write_atomically
from etcd_env._process.ports import port_is_reserved
from etcd_env._process.spawn import pid_alive

from .conftest import (
    REPO,
    assert_gone,
    live_processes_with,
    run_python,
    server_dirs,
    start_from_two_threads,
    wait_until,
)

SETPRIV = shutil.which("setpriv")
NOBODY = [SETPRIV or "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _needs_second_user() -> None:
    if SETPRIV is None or os.getuid() != 0:
        pytest.skip(f"a second user needs root and setpriv (uid {os.getuid()}, setpriv {SETPRIV})")


def _processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text`` (our etcds and watchdogs carry the state dir)."""
    return live_processes_with(text.encode())


def _servers_entries(state: Path) -> list[str]:
    servers = state / "servers"
    return sorted(entry.name for entry in servers.iterdir()) if servers.exists() else []


def _etcd_env_cli(*args: str, env: dict[str, str] | None = None, **kwargs: object) -> subprocess.CompletedProcess[str]:
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), child_env.get("PYTHONPATH")]))
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "etcd_env", *args], capture_output=True, text=True, env=child_env, check=False, **kwargs
    )


# -- 1. a forked child's exit touches nothing of its parent's server ---------------------------

FORKING_OWNER = """
    import json, os, sys, time
    from etcd_env import {kind}
    server = {kind}({args})
    server.start()
    client = server.get_client()
    client.write("/before", "1")
    child = os.fork()
    if child == 0:
        {child_ending}
    os.waitpid(child, 0)
    ports = [r.port for r in server._reservations]
    print(json.dumps({{"ports": ports, "value": client.read("/before").value,
                      "running": server.running}}), flush=True)
    client.write("/after", "2")
    sys.stdin.readline()  # the test checks the server from outside, then lets us stop it
    server.stop()
    print("stopped", flush=True)
"""

CHILD_ENDINGS = {
    "sys.exit(0)": "sys.exit(0)",
    "uncaught exception": "raise RuntimeError('the child crashed')",
}


@pytest.mark.parametrize("kind", ["EtcdServer", "EtcdCluster"])
@pytest.mark.parametrize("ending", list(CHILD_ENDINGS))
def test_a_forked_childs_exit_leaves_the_parents_server_serving(kind: str, ending: str, state_dir: Path) -> None:
    args = "members=3" if kind == "EtcdCluster" else ""
    owner = run_python(
        FORKING_OWNER.format(kind=kind, args=args, child_ending=CHILD_ENDINGS[ending]), stdin=subprocess.PIPE
    )
    assert owner.stdout is not None and owner.stdin is not None
    line = owner.stdout.readline()
    assert line, owner.communicate()[1]
    report = json.loads(line)
    assert report["value"] == "1" and report["running"]
    for port in report["ports"]:
        assert port_is_reserved(port), f"the child's exit released the parent's port {port}"
    assert server_dirs(state_dir), "the child's exit removed the parent's server directory"
    owner.stdin.write("\n")
    owner.stdin.flush()
    out, err = owner.communicate(timeout=60)
    assert owner.returncode == 0 and "stopped" in out, err
    assert "BrokenPipeError" not in err
    wait_until(lambda: _servers_entries(state_dir) == [], 10, "the parent's stop() removed everything")


def test_the_watchdog_fires_when_the_owner_dies_while_a_forked_child_lives(state_dir: Path) -> None:
    owner = run_python(
        """
        import json, os, signal, time
        from etcd_env import EtcdServer
        server = EtcdServer()
        server.start()
        child = os.fork()
        if child == 0:
            time.sleep(60)
            os._exit(0)
        print(json.dumps({"etcd": server.pid, "child": child}), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    assert owner.stdout is not None
    report = json.loads(owner.stdout.readline())
    owner.wait(timeout=30)  # not communicate(): the child keeps the output pipes open
    try:
        assert pid_alive(report["child"]), "the forked child should still live"
        assert_gone(report["etcd"], timeout=3.0)
        wait_until(lambda: _servers_entries(state_dir) == [], 10, "the watchdog removed the dead owner's files")
    finally:
        os.kill(report["child"], signal.SIGKILL)


# -- 2. a planted symlink or a foreign directory is refused -------------------------------------


@pytest.fixture
def sticky_dir() -> Iterator[Path]:
    """A world-writable sticky directory, like /tmp, that uid 65534 can reach."""
    path = Path(tempfile.mkdtemp(prefix="etcd-env-sticky-", dir="/tmp"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _start_in_subprocess(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "from etcd_env import EtcdServer\nwith EtcdServer() as s: print('started', s.get_port())"
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-c", code]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=60)


def test_a_symlink_planted_by_another_user_in_a_sticky_dir_is_refused(sticky_dir: Path, tmp_path: Path) -> None:
    _needs_second_user()
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o755)
    victim.chmod(0o755)
    planted = sticky_dir / f"etcd-env-{os.getuid()}"
    subprocess.run([*NOBODY, "ln", "-s", str(victim), str(planted)], check=True)
    assert planted.is_symlink() and planted.lstat().st_uid == 65534
    env = {k: v for k, v in os.environ.items() if k != "ETCD_ENV_STATE_DIR"}
    result = _start_in_subprocess({**env, "TMPDIR": str(sticky_dir)})
    assert result.returncode != 0 and "started" not in result.stdout
    assert "StateDirError" in result.stderr and f"{planted} is a symbolic link" in result.stderr
    assert (victim.stat().st_mode & 0o777) == 0o755, "the link's target was chmod'ed"
    assert list(victim.iterdir()) == [], "something was created through the link"


def test_a_symlinked_state_dir_or_subdir_of_our_own_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "target"
    target.mkdir(mode=0o755)
    target.chmod(0o755)
    link = tmp_path / "state-link"
    link.symlink_to(target)
    monkeypatch.setenv("ETCD_ENV_STATE_DIR", str(link))
    with pytest.raises(StateDirError, match=f"{link} is a symbolic link.*ETCD_ENV_STATE_DIR"):
        EtcdServer().start()
    assert (target.stat().st_mode & 0o777) == 0o755 and list(target.iterdir()) == []

    real = tmp_path / "state"
    real.mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (real / "servers").symlink_to(elsewhere)
    monkeypatch.setenv("ETCD_ENV_STATE_DIR", str(real))
    with pytest.raises(StateDirError, match=f"{real / 'servers'} is a symbolic link"):
        EtcdServer().start()
    assert list(elsewhere.iterdir()) == []


def test_a_state_dir_owned_by_another_user_is_refused(sticky_dir: Path) -> None:
    _needs_second_user()
    theirs = sticky_dir / "theirs"
    subprocess.run([*NOBODY, "mkdir", "-m", "0700", str(theirs)], check=True)
    result = _start_in_subprocess({**os.environ, "ETCD_ENV_STATE_DIR": str(theirs)})
    assert result.returncode != 0 and "belongs to uid 65534" in result.stderr


def test_a_state_dir_in_a_world_writable_non_sticky_dir_is_refused(tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    result = _start_in_subprocess({**os.environ, "ETCD_ENV_STATE_DIR": str(open_dir / "state")})
    assert result.returncode != 0 and "writable by every user and not sticky" in result.stderr


def test_a_failed_atomic_write_leaves_no_scratch_file(tmp_path: Path) -> None:
    code = f"""
import resource, signal
from pathlib import Path
from etcd_env._common.paths import write_atomically
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))  # a full disk, as far as this process can tell
try:
    write_atomically(Path({str(tmp_path / "info.json")!r}), "x" * 10000)
except OSError as error:
    print("failed", error.errno)
"""
    result = run_python(code)
    out, err = result.communicate(timeout=30)
    assert "failed" in out, err
    assert list(tmp_path.iterdir()) == []
    write_atomically(tmp_path / "info.json", "ok")  # and a write that fits still works
    assert [p.name for p in tmp_path.iterdir()] == ["info.json"]


# -- 3 and 4. dead owners' files are reclaimed, by the watchdog or by reap ----------------------

KILLED_IN_START = """
    import sys
    from etcd_env import EtcdServer
    print("starting", flush=True)
    EtcdServer().start()
    print("started", flush=True)
    sys.stdin.readline()
"""


def test_owners_killed_at_random_moments_of_start_leave_nothing_without_a_reap(state_dir: Path) -> None:
    chooser = random.Random(11)
    iterations = 16
    for _ in range(iterations):
        owner = run_python(KILLED_IN_START, stdin=subprocess.PIPE)
        assert owner.stdout is not None
        assert owner.stdout.readline().strip() == "starting", owner.communicate()[1]
        time.sleep(chooser.uniform(0, 0.08))
        owner.kill()
        owner.communicate(timeout=30)
    time.sleep(3.0)
    wait_until(lambda: _processes_mentioning(f"{state_dir}/servers/") == [], 5, "every etcd and watchdog gone")
    assert _servers_entries(state_dir) == [], "a dead owner's files were left without a reap"


def test_reap_sees_and_reclaims_a_lock_file_or_a_directory_alone(state_dir: Path) -> None:
    with EtcdServer():  # creates the state dir's layout
        pass
    servers = state_dir / "servers"
    (servers / "etcd-env-1-deadbeef.lock").touch()
    (servers / "etcd-env-2-cafecafe").mkdir()
    names = sorted(leftover.name for leftover in find_leftovers())
    assert names == ["etcd-env-1-deadbeef", "etcd-env-2-cafecafe"]
    assert sorted(p.name for p in servers.iterdir()) == ["etcd-env-1-deadbeef.lock", "etcd-env-2-cafecafe"]
    checked = _etcd_env_cli("reap", "--dry-run", "--check", env={"ETCD_ENV_STATE_DIR": str(state_dir)})
    assert checked.returncode == 1 and checked.stdout.count("left over:") == 2, checked.stdout
    assert "only its lock file is left" in checked.stdout
    assert sorted(leftover.name for leftover in reap()) == names
    assert _servers_entries(state_dir) == []


def test_stop_after_the_watchdog_died_does_not_raise(state_dir: Path) -> None:
    server = EtcdServer()
    server.start()
    assert server._member is not None
    watchdog = server._member.record.watchdog.pid
    assert watchdog is not None
    os.kill(watchdog, signal.SIGKILL)
    assert_gone(watchdog)
    server.stop()
    assert _servers_entries(state_dir) == []


def test_cluster_stop_removes_every_member_when_one_fails(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = EtcdCluster(3)
    cluster.start()
    pids = [pid for pid in cluster.pids if pid is not None]
    failing = cluster._members[0]

    def fail(*_args: object) -> None:
        raise OSError("member 0 would not stop")

    monkeypatch.setattr(failing, "kill", fail)
    with pytest.raises(OSError, match="member 0 would not stop"):
        cluster.stop()
    for pid in pids:
        assert_gone(pid)
    assert _servers_entries(state_dir) == []


# -- 7. a port lost to a listener outside our locks ---------------------------------------------


class _NotEtcd(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"not etcd")

    def log_message(self, *_args: object) -> None:
        pass


def test_a_port_taken_by_a_program_outside_our_locks_is_retried(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another user's program binds our reserved client port between our reservation and etcd's bind."""
    low = 20000 + (os.getpid() % 500) * 20  # below the ephemeral range, apart per xdist worker
    ports = range(low, low + 8)
    monkeypatch.setenv("ETCD_ENV_PORT_RANGE", f"{low}-{low + 7}")
    # Bound with SO_REUSEADDR but not listening: our probe can still bind beside them, as when
    # the other program has not bound yet. The first port we reserve gets a listener at once.
    sockets = {}
    for port in ports:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sockets[port] = sock
    stolen: list[int] = []
    stop = threading.Event()

    def steal_first_reserved_port() -> None:
        # The client port is reserved (locked, then probed free) before the peer port is locked:
        # once two lock files exist, the older is our client port, probed and not yet bound.
        lock_dir = state_dir / "ports"
        while not stop.is_set():
            locks = sorted(lock_dir.glob("port-*.lock"), key=lambda path: path.stat().st_mtime_ns)
            if len(locks) >= 2:
                # Oldest first; where the filesystem's clock is coarse, the two may tie and etcd may
                # already listen on the peer port: take the first one nobody listens on yet.
                for lock in locks:
                    port = int(lock.stem.removeprefix("port-"))
                    try:
                        sockets[port].listen()
                    except OSError:
                        continue
                    server = http.server.HTTPServer(("127.0.0.1", port), _NotEtcd, bind_and_activate=False)
                    server.socket.close()
                    server.socket = sockets[port]
                    threading.Thread(target=server.serve_forever, daemon=True).start()
                    stolen.append(port)
                    return
            time.sleep(0.0005)

    thief = threading.Thread(target=steal_first_reserved_port, daemon=True)
    thief.start()
    try:
        with EtcdServer() as server:
            assert stolen, "the test did not take a port"
            assert server.get_port() != stolen[0]
            server.get_client().write("/k", "v")
    finally:
        stop.set()
        for sock in sockets.values():
            sock.close()
    assert _servers_entries(state_dir) == []


# -- 8. threads, managed flags, and the CLI's clear errors --------------------------------------


def test_two_threads_starting_one_server_one_wins(state_dir: Path) -> None:
    server = EtcdServer()
    try:
        (error,) = start_from_two_threads(server.start)
        assert isinstance(error, RuntimeError) and ("another thread" in str(error) or "already started" in str(error))
        assert len(server_dirs(state_dir)) == 1
    finally:
        server.stop()
    assert _servers_entries(state_dir) == []


def test_stop_from_another_thread_during_start_leaves_nothing(state_dir: Path) -> None:
    server = EtcdServer()
    starter = threading.Thread(target=server.start)
    starter.start()
    time.sleep(0.02)
    server.stop()  # waits for the start in progress, then stops it
    starter.join()
    assert not server.running, "a server outlived the stop() that raced its start()"
    assert _servers_entries(state_dir) == []
    wait_until(lambda: _processes_mentioning(str(state_dir)) == [], 5, "no etcd or watchdog left")


@pytest.mark.parametrize(
    ("args", "advice"),
    [
        (["--data-dir", "/tmp/x"], "data_dir"),
        (["--listen-client-urls=http://0.0.0.0:2379"], "host and client_port"),
        (["-name", "x"], "names each member"),
        (["--initial-cluster-state", "existing"], "new cluster"),
    ],
)
def test_extra_args_that_override_managed_flags_are_refused(args: list[str], advice: str) -> None:
    with pytest.raises(ValueError, match=f"may not set {args[0].split('=')[0]}.*{advice}"):
        EtcdServer(extra_args=args)
    with pytest.raises(ValueError, match="etcd_env manages it"):
        EtcdCluster(extra_args=args)


@pytest.mark.parametrize("port", ["0", "70000"])
def test_run_with_an_impossible_port_is_a_usage_error(port: str, state_dir: Path) -> None:
    result = _etcd_env_cli("run", "--port", port, "--", "true", timeout=30)
    assert result.returncode == 2 and "is not a TCP port" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_of_a_file_that_is_not_a_program_is_one_clear_error(state_dir: Path, tmp_path: Path) -> None:
    # Executable, but neither a binary nor a script: the kernel refuses it (ENOEXEC). A file of
    # the test's own, as no system file can be relied on (Nix's build sandbox has no /etc/hostname).
    not_a_program = tmp_path / "notes.txt"
    not_a_program.write_text("these are notes, not a program\n")
    not_a_program.chmod(0o755)
    result = _etcd_env_cli("run", "--", str(not_a_program), timeout=60)
    assert result.returncode == 126, result.stderr
    assert f"cannot run {not_a_program}: Exec format error" in result.stderr
    assert "Traceback" not in result.stderr
    assert _servers_entries(state_dir) == []


def test_a_host_that_is_not_this_machine_is_said_so(state_dir: Path) -> None:
    with pytest.raises(HostNotLocalError, match="not an address of this machine"):
        EtcdServer(host="192.0.2.1").start(timeout=10)
    result = _etcd_env_cli("run", "--host", "192.0.2.1", "--", "true", timeout=30)
    assert result.returncode == 1 and "not an address of this machine" in result.stderr
    assert "no free port" not in result.stderr


# -- 6. etcd-env run: a signal reaches the command once ------------------------------------------

COUNTER = """
import os, select, signal, sys, time
# Python runs a handler once for signals that arrive close together; the wakeup fd gets a
# byte for every delivery, so it counts what the process really received.
read_end, write_end = os.pipe()
os.set_blocking(write_end, False)
signal.set_wakeup_fd(write_end)
signal.signal(getattr(signal, sys.argv[1]), lambda signum, frame: None)
print("ready", flush=True)
select.select([read_end], [], [], 30)
time.sleep(1.0)  # a second delivery, if any, lands in this second
os.set_blocking(read_end, False)
print(f"received={len(os.read(read_end, 100))}", flush=True)
"""


def _cli_env(state_dir: Path) -> dict[str, str]:
    env = {**os.environ, "ETCD_ENV_STATE_DIR": str(state_dir)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _read_until(fd: int, marker: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {marker!r} within {timeout}s; output so far: {seen!r}")
        readable, _, _ = select.select([fd], [], [], remaining)
        if readable:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the pty's other side closed
                chunk = b""
            if not chunk:
                raise AssertionError(f"output ended before {marker!r}: {seen!r}")
            seen += chunk
    return seen


#: Run in the child before `etcd-env run`: make the pty on fd 0 its controlling terminal, as a login shell's.
TAKE_TERMINAL = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); os.execv(sys.argv[1], sys.argv[1:])"
)


def _run_counter_on_a_terminal(state_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """`etcd-env run` of the SIGINT counter in a new session whose controlling terminal is a pty.

    Not pty.fork(): a fork that runs Python in the child may deadlock when the parent has threads
    (xdist's; Python 3.13 warns). start_new_session is the setsid subprocess does before exec, in C;
    the child then takes the terminal itself before it execs `etcd-env run`.
    """
    argv = [sys.executable, "-m", "etcd_env", "run", "--", sys.executable, "-c", COUNTER, "SIGINT"]
    terminal, follower = os.openpty()
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", TAKE_TERMINAL, *argv],
            env=_cli_env(state_dir),
            stdin=follower,
            stdout=follower,
            stderr=follower,
            start_new_session=True,
        )
    except BaseException:
        os.close(terminal)
        raise
    finally:
        os.close(follower)
    return child, terminal


def _read_received(terminal: int) -> bytes:
    """The terminal's output up to the end of the command's ``received=N`` line."""
    output = _read_until(terminal, b"received=", 30)
    while b"\n" not in output.split(b"received=", 1)[1]:
        readable, _, _ = select.select([terminal], [], [], 5)
        chunk = os.read(terminal, 4096) if readable else b""
        if not chunk:
            break
        output += chunk
    return output


def test_run_ctrl_c_on_a_terminal_reaches_the_command_once(state_dir: Path) -> None:
    child, terminal = _run_counter_on_a_terminal(state_dir)
    try:
        _read_until(terminal, b"ready", 60)
        os.write(terminal, b"\x03")  # Ctrl-C, as typed: the line discipline signals the foreground group
        output = _read_received(terminal)
        returncode = child.wait(timeout=30)
    finally:
        os.close(terminal)
        if child.poll() is None:
            child.kill()
    assert b"received=1" in output, output
    assert returncode == 0
    wait_until(lambda: _servers_entries(state_dir) == [], 10, "etcd-env stopped its server")


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_run_a_signal_to_etcd_envs_group_reaches_the_command_once(signame: str, state_dir: Path) -> None:
    runner = subprocess.Popen(
        [sys.executable, "-m", "etcd_env", "run", "--", sys.executable, "-c", COUNTER, signame],
        env=_cli_env(state_dir),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a group of its own, as a CI job's: the signal goes to the whole group
    )
    assert runner.stdout is not None
    try:
        assert runner.stdout.readline().strip() == b"ready"
        os.killpg(runner.pid, getattr(signal, signame))
        out, err = runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert b"received=1" in out, (out, err)
    assert runner.returncode == 0, err


def _process_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


def test_run_ctrl_z_stops_the_command_and_etcd_env_and_fg_resumes_both(state_dir: Path) -> None:
    child, terminal = _run_counter_on_a_terminal(state_dir)
    try:
        _read_until(terminal, b"ready", 60)
        os.write(terminal, b"\x1a")  # Ctrl-Z: the command's group stops; etcd-env must stop too, for the shell
        wait_until(lambda: _process_state(child.pid) == "T", 10, "etcd-env stopped once its command stopped")
        os.kill(child.pid, signal.SIGCONT)  # the shell's `fg`
        wait_until(lambda: _process_state(child.pid) != "T", 10, "etcd-env resumed")
        time.sleep(0.3)
        os.write(terminal, b"\x03")
        output = _read_received(terminal)
        returncode = child.wait(timeout=30)
    finally:
        os.close(terminal)
        if child.poll() is None:
            child.kill()
    assert b"received=1" in output, output
    assert returncode == 0


# -- 4. the setpriv race: an etcd that shows up after its owner died ----------------------------

LATE_ETCD_OWNER = """
    import json, os, signal, subprocess
    from etcd_env._binary.resolve import resolve_binary
    from etcd_env._process.command import MemberCommand
    from etcd_env._common.paths import servers_dir
    from etcd_env._process.ports import reserve_port
    from etcd_env._process.registry import ServerRecord
    name = f"etcd-env-late-{os.getpid()}"
    record = ServerRecord.create(name, servers_dir())
    client, peer = reserve_port(), reserve_port()
    command = MemberCommand.single_member(
        resolve_binary(None), name, record.default_data_dir,
        f"http://127.0.0.1:{client.port}", f"http://127.0.0.1:{peer.port}",
    )
    record.watchdog.spawning()
    # What an owner killed between the spawn and setpriv's prctl leaves: an etcd no death signal
    # reaches, whose name appears in /proc only after its owner is gone (here 0.5 s after).
    subprocess.Popen(
        ["sh", "-c", "sleep 0.5; exec $ETCD_ARGV"],
        env={**os.environ, "ETCD_ARGV": " ".join(command.argv())},
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    print(json.dumps({"name": name, "root": str(record.root)}), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_an_etcd_appearing_after_its_owner_died_mid_spawn_is_killed(state_dir: Path) -> None:
    owner = run_python(LATE_ETCD_OWNER)
    assert owner.stdout is not None
    line = owner.stdout.readline()
    assert line, owner.communicate()[1]
    report = json.loads(line)
    owner.wait(timeout=30)
    named = f"--name\0{report['name']}\0"
    time.sleep(3.0)
    survivors = _processes_mentioning(named)
    for pid in survivors:  # so that a failure here leaks nothing either
        os.killpg(pid, signal.SIGKILL)
    assert survivors == [], "an etcd outlived its owner's death mid-spawn"
    wait_until(lambda: _servers_entries(state_dir) == [], 10, "the watchdog removed the record and its lock")
