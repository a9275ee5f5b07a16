"""etcd-env up/status/env/down: a detached server that outlives the command, and nothing else leaks."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from etcd_env._process.spawn import pid_alive

from .conftest import assert_gone, child_env, server_dirs, wait_until


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "etcd_env", *args],
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.fixture
def shell(state_dir):
    yield state_dir
    # Whatever a test did, leave no detached server behind.
    cli("down")


def exports(text: str) -> dict[str, str]:
    pairs = [line.removeprefix("export ").split("=", 1) for line in text.splitlines()]
    return {name: value for name, value in pairs}


def test_up_env_status_down(shell):
    started = cli("up")
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith("started: http://127.0.0.1:")

    again = cli("up")
    assert again.returncode == 0
    assert again.stdout.startswith("already up: ")
    assert again.stdout.splitlines()[0].removeprefix("already up: ") == started.stdout.splitlines()[0].removeprefix(
        "started: "
    )

    printed = cli("env")
    assert printed.returncode == 0
    variables = exports(printed.stdout)
    with urllib.request.urlopen(variables["ETCD_ENV_URL"] + "/health", timeout=10) as response:
        assert json.loads(response.read())["health"] == "true"

    # eval "$(etcd-env env)" in a real shell.
    seen = subprocess.run(
        ["bash", "-c", 'eval "$1"; echo "$ETCD_ENV_ENDPOINT"', "_", printed.stdout],
        capture_output=True,
        text=True,
        check=True,
    )
    assert seen.stdout.strip() == variables["ETCD_ENV_ENDPOINT"]

    status = json.loads(cli("status", "--json").stdout)
    etcd_pid = status["detached"]["pid"]
    assert status["detached"]["ETCD_ENV_URL"] == variables["ETCD_ENV_URL"]
    assert [server["pid"] for server in status["live_servers"]] == [etcd_pid]

    stopped = cli("down")
    assert stopped.stdout.startswith("stopped: ")
    assert_gone(etcd_pid)
    assert server_dirs(shell) == []
    assert cli("down").stdout.strip() == "no detached server is up"
    missing = cli("env")
    assert missing.returncode == 1
    assert "etcd-env up" in missing.stderr


def test_detached_server_outlives_the_process_that_started_it(shell):
    # `up` runs in a child that exits at once; the server must keep serving after it.
    assert cli("up").returncode == 0
    state = json.loads(cli("status", "--json").stdout)["detached"]
    assert pid_alive(state["pid"])
    with urllib.request.urlopen(state["ETCD_ENV_URL"] + "/health", timeout=10) as response:
        assert response.status == 200


def test_killed_supervisor_takes_etcd_and_its_files_with_it(shell):
    assert cli("up").returncode == 0
    record = json.loads((shell / "shell" / "shell.json").read_text())
    os.kill(record["supervisor_pid"], signal.SIGKILL)
    assert_gone(record["etcd_pid"], timeout=5)
    wait_until(lambda: server_dirs(shell) == [], 5, "the watchdog should remove the server's directory")
    status = json.loads(cli("status", "--json").stdout)
    assert status["detached"] is None
    assert not (shell / "shell" / "shell.json").exists()


def test_up_with_a_missing_binary_fails_with_the_cause(shell, tmp_path):
    missing = tmp_path / "no-etcd"
    result = cli("up", "--binary", str(missing))
    assert result.returncode == 1
    assert str(missing) in result.stderr
    assert "does not exist" in result.stderr
    assert json.loads(cli("status", "--json").stdout)["detached"] is None


def test_up_members_and_tls(shell):
    started = cli("up", "--members", "3", "--tls")
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith("started: https://127.0.0.1:") and "3 members" in started.stdout
    variables = exports(cli("env").stdout)
    endpoints = variables["ETCDCTL_ENDPOINTS"].split(",")
    assert len(endpoints) == 3 and all(url.startswith("https://") for url in endpoints)
    assert variables["ETCD_ENV_HOST"] == "127.0.0.1" and variables["ETCD_ENV_URL"].endswith(variables["ETCD_ENV_PORT"])
    import ssl  # noqa: PLC0415

    context = ssl.create_default_context(cafile=variables["ETCDCTL_CACERT"])
    context.load_cert_chain(variables["ETCDCTL_CERT"], variables["ETCDCTL_KEY"])
    for url in endpoints:
        with urllib.request.urlopen(url + "/health", timeout=10, context=context) as response:
            assert json.loads(response.read())["health"] == "true"
    assert len(json.loads(cli("status", "--json").stdout)["live_servers"]) == 3
    assert cli("down").stdout.startswith("stopped: ")
    wait_until(lambda: server_dirs(shell) == [], 5, "every member's directory should be removed")
    refused = cli("up", "--members", "2", "--port", "2379")
    assert refused.returncode == 2 and "usage: etcd-env up" in refused.stderr


def _nixpkgs_wrapped_etcd_env(where: Path) -> Path:
    """etcd-env as nixpkgs installs it (pkgs/development/interpreters/python/wrap.sh).

    A bare interpreter (no site-packages of its own); the console script's own text
    adds etcd_env's and its dependencies' directories with ``site.addsitedir``; a shell
    wrapper in its place sets PYTHONNOUSERSITE. No PYTHONPATH anywhere.
    """
    bare = where / "python"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    # Where this process finds etcd_env and what it imports (python-etcd, filelock and theirs).
    modules = ("etcd_env", "etcd", "filelock", "urllib3", "dns")
    sites = list(dict.fromkeys(str(Path(importlib.import_module(name).__path__[0]).parent) for name in modules))
    script = where / ".etcd-env-wrapped"
    script.write_text(
        f"#!{bare / 'bin' / 'python'}\n"
        "# -*- coding: utf-8 -*-\n"
        "import sys;import site;import functools;sys.argv[0] = 'etcd-env';"
        f"functools.reduce(lambda k, p: site.addsitedir(p, k), {sites!r}, site._init_pathinfo());\n"
        "import re\n"
        "import sys\n"
        "from etcd_env._cli import main\n"
        'if __name__ == "__main__":\n'
        "    sys.exit(main())\n"
    )
    wrapper = where / "etcd-env"
    wrapper.write_text(f"#!/bin/sh\nexport PYTHONNOUSERSITE='true'\nexec {script} \"$@\"\n")
    for path in (script, wrapper):
        path.chmod(0o755)
    return wrapper


def test_up_status_down_from_a_nixpkgs_wrapped_console_script(shell, tmp_path):
    # The detached supervisor is a new interpreter: it must import etcd_env however `up` did.
    wrapper = _nixpkgs_wrapped_etcd_env(tmp_path)
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    bare_import = subprocess.run(
        [str(tmp_path / "python" / "bin" / "python"), "-c", "import etcd_env"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bare_import.returncode != 0, "the wrapper's interpreter alone must not find etcd_env, as in nixpkgs"

    def wrapped(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(wrapper), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=90, check=False
        )

    started = wrapped("up")
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith("started: http://127.0.0.1:")
    status = wrapped("status", "--json")
    assert status.returncode == 0, status.stderr
    detached = json.loads(status.stdout)["detached"]
    with urllib.request.urlopen(detached["ETCD_ENV_URL"] + "/health", timeout=10) as response:
        assert json.loads(response.read())["health"] == "true"
    stopped = wrapped("down")
    assert stopped.stdout.startswith("stopped: "), stopped.stderr
    assert_gone(detached["pid"])
    assert server_dirs(shell) == []
