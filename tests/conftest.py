"""Shared helpers for the suite. Every test runs a real etcd; nothing here fakes one.

The suite is hermetic: whatever ``ETCD_ENV_*``, ``TORCHELASTIC_*``, ``ETCDCTL_*``,
``PYTHONPATH``, HOME or TMPDIR the caller has, every test sees the same thing. At
session start the conftest decides *the etcd under test* (the caller's
``ETCD_ENV_BINARY`` or ``TORCHELASTIC_ETCD_BINARY_PATH``, else etcd_env's own
resolution), verifies it against ``ETCD_ENV_EXPECT_VERSION`` when the caller set it,
and prints it in the report header. From then on the session (the plugin's header and
leftover summary, xdist workers) and each test run in an environment with none of those
variables except ``ETCD_ENV_BINARY`` (naming the etcd under test) and the session's private
state and cache dirs, so the suite writes nothing into the caller's; a test about resolution
deletes what it does not mean.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from etcd_env._binary.resolve import PINNED_SERIES, EtcdBinary, pin_verdict, resolve_binary, version_matches
from etcd_env._common.errors import EtcdNotFoundError, EtcdVersionError
from etcd_env._process.spawn import pid_alive

REPO = Path(__file__).resolve().parent.parent

PLUGIN_MODULE = "etcd_env.pytest_plugin"


def plugin_autoloaded() -> bool:
    """Whether pytest loads the plugin by itself: its ``etcd_env`` entry point is installed and autoload is on.

    A checkout on PYTHONPATH (``nix develop``) has no entry point; an installed one must not be
    listed again under its module name, which pluggy refuses ("already registered").
    """
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    return any(entry.name == "etcd_env" and entry.value == PLUGIN_MODULE for entry in entry_points(group="pytest11"))


#: What an inner pytest (pytester) needs on its command line to have the plugin, as this session has it.
PLUGIN_ARGS: list[str] = [] if plugin_autoloaded() else ["-p", PLUGIN_MODULE]

# pytester runs inner pytest sessions for the plugin's own tests (tests/test_pytest_plugin.py).
pytest_plugins = ["pytester"] + ([] if plugin_autoloaded() else [PLUGIN_MODULE])

#: Variables the suite isolates: every test starts without any of them (see ``hermetic_environment``).
ISOLATED_PREFIXES = ("ETCD_ENV_", "TORCHELASTIC_", "ETCDCTL_")
BINARY_VAR = "ETCD_ENV_BINARY"
TORCH_BINARY_VAR = "TORCHELASTIC_ETCD_BINARY_PATH"
EXPECT_VERSION_VAR = "ETCD_ENV_EXPECT_VERSION"


@dataclass(frozen=True)
class Suite:
    """What one test session runs on, decided once (by the xdist controller) and shared with its workers."""

    path: str
    version: str
    source: str
    expected: str | None
    session_dir: str

    @property
    def state_dir(self) -> str:
        return str(Path(self.session_dir) / "state")

    @property
    def cache_dir(self) -> str:
        return str(Path(self.session_dir) / "cache")


_WORKER_KEY = "etcd_env_suite"
_suite_key = pytest.StashKey[Suite]()
_owner_key = pytest.StashKey[bool]()
_session_env_key = pytest.StashKey[pytest.MonkeyPatch]()


def _etcd_under_test() -> Suite:
    session_dir = tempfile.mkdtemp(prefix="etcd-env-suite-")
    try:
        return _decide(dict(os.environ), session_dir)
    except BaseException:
        shutil.rmtree(session_dir, ignore_errors=True)
        raise


def _decide(caller: dict[str, str], session_dir: str) -> Suite:
    expected = caller.get(EXPECT_VERSION_VAR) or None
    try:
        with pytest.MonkeyPatch.context() as probing:
            # The version probe's cache goes to the session's state dir: the caller's is not ours to write.
            probing.setenv("ETCD_ENV_STATE_DIR", str(Path(session_dir) / "state"))
            # The caller's own environment: their ETCD_ENV_BINARY / TORCHELASTIC_ETCD_BINARY_PATH
            # if set, else etcd_env's default resolution, exactly as a user of the package gets it.
            binary = resolve_binary(environ=caller)
    except (EtcdNotFoundError, EtcdVersionError) as error:
        raise pytest.UsageError(f"etcd_env's suite needs a real etcd and found none usable:\n{error}") from None
    if expected and not version_matches(binary.version, expected):
        raise pytest.UsageError(
            f"{EXPECT_VERSION_VAR}={expected} but the etcd under test, {binary.path} (from {binary.source}), "
            f"is etcd {binary.version}. Point {BINARY_VAR} at etcd {expected}, or unset {EXPECT_VERSION_VAR}."
        )
    if not expected and not version_matches(binary.version, PINNED_SERIES):
        # Off the pin, every server start would warn, and the suite makes that warning an error.
        raise pytest.UsageError(
            f"the etcd under test, {binary.path} (from {binary.source}), is etcd {binary.version}, off the "
            f"pinned {PINNED_SERIES} line. To run the suite on it on purpose, set "
            f"{EXPECT_VERSION_VAR}={binary.version}; otherwise point {BINARY_VAR} at etcd {PINNED_SERIES}."
        )
    return Suite(binary.path, binary.version, binary.source, expected, session_dir)


def _isolate(monkeypatch: pytest.MonkeyPatch, suite: Suite) -> None:
    for name in list(os.environ):
        if name.startswith(ISOLATED_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ETCD_ENV_STATE_DIR", suite.state_dir)
    monkeypatch.setenv("ETCD_ENV_CACHE_DIR", suite.cache_dir)
    monkeypatch.setenv("XDG_CACHE_HOME", str(Path(suite.cache_dir) / "xdg"))
    monkeypatch.setenv(BINARY_VAR, suite.path)
    if suite.expected:
        monkeypatch.setenv(EXPECT_VERSION_VAR, suite.expected)


# First, so every other plugin's configure (and later hooks) already sees the session's environment.
@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    handed = getattr(config, "workerinput", {}).get(_WORKER_KEY)
    if handed is not None:
        config.stash[_suite_key] = Suite(**json.loads(handed))
    else:
        config.stash[_suite_key] = _etcd_under_test()
        config.stash[_owner_key] = True
    session_env = config.stash[_session_env_key] = pytest.MonkeyPatch()
    _isolate(session_env, config.stash[_suite_key])


def _left_in_session(suite: Suite) -> list[Path]:
    servers = Path(suite.state_dir) / "servers"
    return sorted(servers.iterdir()) if servers.is_dir() else []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if config.stash.get(_owner_key, False) and (left := _left_in_session(config.stash[_suite_key])):
        terminalreporter.write_line(
            f"etcd_env's suite left {len(left)} server dir(s) in its state dir, kept for inspection "
            f"(`ETCD_ENV_STATE_DIR={config.stash[_suite_key].state_dir} etcd-env reap`): "
            + ", ".join(path.name for path in left),
            red=True,
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    # A leftover is evidence: its dir stays (and the summary names it); an empty session dir goes.
    if config.stash.get(_owner_key, False) and not _left_in_session(config.stash[_suite_key]):
        shutil.rmtree(config.stash[_suite_key].session_dir, ignore_errors=True)
    if _session_env_key in config.stash:
        config.stash[_session_env_key].undo()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: object) -> None:
    # xdist: the workers share the controller's etcd and state dir (port reservations are
    # coordinated through the state dir, so all workers must use one).
    suite = node.config.stash[_suite_key]  # type: ignore[attr-defined]
    node.workerinput[_WORKER_KEY] = json.dumps(asdict(suite))  # type: ignore[attr-defined]


def pytest_report_header(config: pytest.Config) -> list[str]:
    suite = config.stash[_suite_key]
    verdict = pin_verdict(EtcdBinary(suite.path, suite.version, suite.source))
    checked = f"; verified against {EXPECT_VERSION_VAR}={suite.expected}" if suite.expected else ""
    # Its known defects are the plugin's header lines ("etcd_env: known defect ..."): the plugin
    # resolves this same etcd, since the session runs in the isolated environment from configure on.
    return [f"etcd under test: {suite.path} (from {suite.source}): {verdict}{checked}"]


@pytest.fixture(scope="session")
def etcd_under_test(pytestconfig: pytest.Config) -> Suite:
    return pytestconfig.stash[_suite_key]


@pytest.fixture(autouse=True)
def hermetic_environment(etcd_under_test: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts from the same variables, whatever the caller exported."""
    _isolate(monkeypatch, etcd_under_test)


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a Python child: this one, plus ``env``, with the checkout first on PYTHONPATH.

    The caller's PYTHONPATH is kept, never replaced: in nixpkgs' check phase and in
    `nix develop` it is how the child finds filelock and python-etcd.
    """
    merged = {**os.environ, **(env or {})}
    merged["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), merged.get("PYTHONPATH")]))
    return merged


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private etcd_env state dir for one test, so its leftovers can be counted exactly."""
    path = tmp_path / "state"
    monkeypatch.setenv("ETCD_ENV_STATE_DIR", str(path))
    # Hermetic even when the whole suite runs under `etcd-env run` (which exports an existing server).
    monkeypatch.delenv("ETCD_ENV_ENDPOINTS", raising=False)
    yield path


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"within {timeout}s: {what}")


def start_from_two_threads(start: Callable[[], object]) -> tuple[BaseException, ...]:
    """Call ``start`` from two threads at once; the errors they raised (none for a thread that started it)."""
    barrier = threading.Barrier(2)
    outcomes: list[BaseException | None] = []

    def one() -> None:
        barrier.wait()
        try:
            start()
        except BaseException as error:  # the outcome is the caller's subject
            outcomes.append(error)
        else:
            outcomes.append(None)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(None) == 1, f"exactly one start must win: {outcomes}"
    return tuple(outcome for outcome in outcomes if outcome is not None)


def live_processes_with(*markers: bytes) -> list[int]:
    """Live processes (zombies are not) other than this one whose command line holds every marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if all(marker in argv for marker in markers) and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def assert_gone(pid: int, timeout: float = 3.0) -> None:
    wait_until(lambda: not pid_alive(pid), timeout, f"process {pid} should have exited")


def server_dirs(state: Path) -> list[Path]:
    servers = state / "servers"
    return sorted(p for p in servers.iterdir() if p.is_dir()) if servers.exists() else []


def run_python(code: str, env: dict[str, str] | None = None, **kwargs: object) -> subprocess.Popen[str]:
    """Start a Python child running ``code`` (dedented), with the repo importable."""
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-c", textwrap.dedent(code)],
        env=child_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def write_script(path: Path, body: str) -> Path:
    """A small executable, standing in for a broken etcd binary in error-path tests."""
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path
