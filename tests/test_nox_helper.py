"""nox_etcd in real nox runs: a server per session, exported through session.env, stopped after."""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from etcd_env import EtcdServer, resolve_binary

from .conftest import REPO, child_env, server_dirs

nox_module = pytest.importorskip("nox", reason="nox is not installed: pip install -e '.[test]'")

NOXFILE = """
import inspect, json, os, sys, time, urllib.request
sys.path.insert(0, {repo!r})
import nox
from etcd_env import nox_etcd

# As in the project's noxfile: allow_parallel= only where nox takes it (2026.8.10 and later).
PARALLEL = {{"allow_parallel": True}} if "allow_parallel" in inspect.signature(nox.session).parameters else {{}}

OUT = {out!r}

def probe(session, name, hold=0.0):
    with nox_etcd(session) as server:
        url = session.env["ETCD_ENV_URL"]
        session.run(
            "python", "-c",
            "import os, urllib.request, json, time, sys;"
            "h = json.loads(urllib.request.urlopen(os.environ['ETCD_ENV_URL'] + '/health').read());"
            "time.sleep(float(sys.argv[1]));"
            "assert h['health'] == 'true', h",
            str(hold),
        )
        record = {{"url": url, "endpoint": session.env["ETCD_ENV_ENDPOINT"], "kind": type(server).__name__,
                   "binary": getattr(getattr(server, "binary", None), "path", None)}}
    record["env_after"] = "ETCD_ENV_URL" in session.env
    with open(os.path.join(OUT, name + ".json"), "w") as out:
        json.dump(record, out)

@nox.session(venv_backend="none", **PARALLEL)
def one(session):
    probe(session, "one", hold=float(os.environ.get("HOLD", "0")))

@nox.session(venv_backend="none", **PARALLEL)
def two(session):
    probe(session, "two", hold=float(os.environ.get("HOLD", "0")))
"""


@pytest.fixture
def noxfile(tmp_path: Path, state_dir: Path) -> Path:
    path = tmp_path / "noxfile.py"
    path.write_text(textwrap.dedent(NOXFILE.format(repo=str(REPO), out=str(tmp_path))))
    return path


def nox(noxfile: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    # venv_backend="none" runs `python` from PATH: make that this interpreter, from any venv or shell.
    on_path = {"PATH": os.pathsep.join(filter(None, [str(Path(sys.executable).parent), os.environ.get("PATH")]))}
    return subprocess.Popen(
        [sys.executable, "-m", "nox", "-f", str(noxfile), *args],
        env=child_env({**on_path, **(env or {})}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> str:
    output, _ = process.communicate(timeout=180)
    assert process.returncode == 0, output
    return output


def result(noxfile: Path, name: str) -> dict[str, object]:
    return json.loads((noxfile.parent / f"{name}.json").read_text())


def test_session_gets_a_server_and_it_is_gone_after(noxfile, state_dir):
    output = finish(nox(noxfile, "-s", "one"))
    one = result(noxfile, "one")
    assert one["kind"] == "EtcdServer"
    assert str(one["url"]).startswith("http://127.0.0.1:")
    assert one["env_after"] is False
    assert "etcd_env: etcd 3." in output
    assert output.count(f"serving {one['url']}") == 1, output  # the start line, once
    assert server_dirs(state_dir) == []


def test_binary_from_the_environment_wins(noxfile):
    # As in the Nix shell: ETCD_ENV_BINARY names an etcd outside every venv.
    binary = resolve_binary().path
    finish(nox(noxfile, "-s", "one", env={"ETCD_ENV_BINARY": binary}))
    assert result(noxfile, "one")["binary"] == binary


def test_parallel_sessions_with_nox_j_get_separate_servers(noxfile):
    # `nox -j` arrived in nox 2026.8.10 (with allow_parallel=); older nox, e.g. nixos-26.05's
    # 2026.4.10, runs sessions one at a time: test_two_nox_processes_at_once_do_not_clash covers it there.
    if "allow_parallel" not in inspect.signature(nox_module.session).parameters:
        pytest.skip(f"nox {importlib.metadata.version('nox')} has no -j (parallel sessions arrived in nox 2026.8.10)")
    finish(nox(noxfile, "-j", "2", "-s", "one", "two", env={"HOLD": "1"}))
    assert result(noxfile, "one")["url"] != result(noxfile, "two")["url"]


def test_two_nox_processes_at_once_do_not_clash(noxfile, state_dir):
    # Started together, each holding its server for 1.5 s: their servers are up at the same time.
    first = nox(noxfile, "-s", "one", env={"HOLD": "1.5"})
    second = nox(noxfile, "-s", "two", env={"HOLD": "1.5"})
    finish(first)
    finish(second)
    assert result(noxfile, "one")["url"] != result(noxfile, "two")["url"]
    assert server_dirs(state_dir) == []


def test_existing_cluster_from_the_environment(noxfile):
    with EtcdServer() as outer:
        output = finish(nox(noxfile, "-s", "one", env={"ETCD_ENV_ENDPOINTS": outer.client_url}))
        one = result(noxfile, "one")
        assert one["kind"] == "ExistingCluster"
        assert one["url"] == outer.client_url
        assert "using the existing cluster" in output
        assert outer.running


def test_unreachable_existing_cluster_fails_the_session_clearly(noxfile):
    process = nox(noxfile, "-s", "one", env={"ETCD_ENV_ENDPOINTS": "http://127.0.0.1:1"})
    output, _ = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "ClusterUnavailableError" in output and "http://127.0.0.1:1" in output
