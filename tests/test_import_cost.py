"""Loading etcd_env stays light: every pytest session of anyone who has it installed loads the plugin.

etcd-env's ``pytest11`` entry point makes pytest import ``etcd_env.pytest_plugin`` (and with it
``etcd_env``) in every session, whether or not a test uses etcd. What downloads, unpacks, locks,
speaks HTTP or TLS, or spawns is imported where it is used, not at import time. Whether it is
loaded is checked here, without timing anything: ``benchmarks/plugin_import.py`` measures what
it costs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import child_env

#: Modules only the work itself needs (an install, a lock, a request, a spawn, a cluster, a client, TLS).
HEAVY = (
    "tarfile",
    "zipfile",
    "http.client",
    "urllib.request",
    "ssl",
    "email.parser",
    "filelock",
    "ctypes",
    "concurrent.futures",
    "etcd",
    "urllib3",
    "trustme",
    "cryptography",
)


def _loaded(code: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return list(json.loads(done.stdout.splitlines()[-1]))


def test_import_etcd_env_loads_none_of_the_heavy_modules() -> None:
    loaded = _loaded("import etcd_env")
    assert "etcd_env._binary.install" in loaded and "etcd_env._cluster" in loaded  # the whole API is imported
    assert [name for name in HEAVY if name in loaded] == []


def test_importing_the_plugin_after_pytest_adds_none_of_them() -> None:
    before = set(_loaded("import pytest"))
    added = set(_loaded("import pytest\nimport etcd_env.pytest_plugin")) - before
    assert "etcd_env.pytest_plugin" in added
    assert sorted(name for name in HEAVY if name in added) == []


SESSION_PROBE = """
import json, os, sys

def pytest_unconfigure(config):
    with open(os.environ["MODULES_OUT"], "w") as out:
        json.dump(sorted(sys.modules), out)
"""


def _session_modules(directory: Path, *plugin_args: str) -> set[str]:
    out = directory / "modules.json"
    # No -q: the report header (which etcd, its defects) is part of what every session runs.
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--co", "-p", "no:cacheprovider", "-p", "no:etcd_env", *plugin_args],
        cwd=directory,
        # A state dir of its own: live servers of other tests there would be looked at, under their locks.
        env=child_env({"MODULES_OUT": str(out), "ETCD_ENV_STATE_DIR": str(directory / "state")}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 5, done.stdout + done.stderr  # 5: nothing collected, as in an empty directory
    return set(json.loads(out.read_text()))


def test_a_session_without_etcd_loads_none_of_them(tmp_path: Path) -> None:
    # A session that collects no etcd test: configure, the report header, the leftover summary.
    (tmp_path / "conftest.py").write_text(SESSION_PROBE)
    without = _session_modules(tmp_path)
    with_plugin = _session_modules(tmp_path, "-p", "etcd_env.pytest_plugin")
    assert "etcd_env.pytest_plugin" in with_plugin and "etcd_env.pytest_plugin" not in without
    assert sorted(name for name in HEAVY if name in with_plugin - without) == []
