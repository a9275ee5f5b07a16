"""A real torchrun job: two agents, etcd-v2 rendezvous on a managed etcd, a checked gloo all_reduce."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="torch is not installed: run `nox -s rendezvous_tests`, which installs it")

HERE = Path(__file__).parent
TWO_NODES = HERE / "two_nodes.py"


def _check(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, f"two-node job failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["exit_codes"] == [0, 0]
    assert sorted((r["rank"], r["world"], r["sum"]) for r in summary["results"]) == [(0, 2, 3.0), (1, 2, 3.0)]


def test_two_torchrun_agents_on_the_session_server(rdzv_server, run_ids, tmp_path):
    env = {**os.environ, "ETCD_ENV_ENDPOINT": rdzv_server.get_endpoint()}
    done = subprocess.run(
        [sys.executable, str(TWO_NODES), str(tmp_path), run_ids.new("torchrun")],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    _check(done)


def test_two_torchrun_agents_through_etcd_env_run(tmp_path):
    etcd_env_cli = shutil.which("etcd-env")
    assert etcd_env_cli, "the etcd-env command is not installed in this environment (pip install -e .)"
    done = subprocess.run(
        [etcd_env_cli, "run", "--", sys.executable, str(TWO_NODES), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    _check(done)
