"""Shared helpers for the suite. Every test runs a real etcd; nothing here fakes one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from etcd_env._process import pid_alive

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


def assert_gone(pid: int, timeout: float = 3.0) -> None:
    wait_until(lambda: not pid_alive(pid), timeout, f"process {pid} should have exited")


def server_dirs(state: Path) -> list[Path]:
    servers = state / "servers"
    return sorted(p for p in servers.iterdir() if p.is_dir()) if servers.exists() else []


def run_python(code: str, env: dict[str, str] | None = None, **kwargs: object) -> subprocess.Popen[str]:
    """Start a Python child running ``code`` (dedented), with the repo importable."""
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), child_env.get("PYTHONPATH")]))
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-c", textwrap.dedent(code)],
        env=child_env,
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
