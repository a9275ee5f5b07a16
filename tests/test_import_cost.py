"""Loading etcd_env stays light, and what a start needs is loaded before any start.

etcd-env's ``pytest11`` entry point makes pytest import ``etcd_env.pytest_plugin`` (and with it
``etcd_env``) in every session, whether or not a test uses etcd. What only an install or a
client needs (unpacking, downloading, python-etcd, TLS certificates) is imported where it is
used. What ``start()`` and ``stop()`` need is imported with the package: a Ctrl-C that lands
inside an import leaves a half-imported package behind, and every later start in a process
that survives the interrupt fails (nixpkgs' sandbox caught it: filelock's ``import asyncio``
cut short, then ``NameError: name 'coroutines' is not defined``). Checked here without timing
anything; ``benchmarks/plugin_import.py`` measures what loading costs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import child_env

#: Modules only an install or a client needs: never loaded by importing etcd_env.
HEAVY = (
    "tarfile",
    "zipfile",
    "urllib.request",
    "etcd",
    "urllib3",
    "trustme",
    "cryptography",
)
#: Packages a start or stop imports (locks, spawning, readiness, status, TLS contexts): loaded
#: with etcd_env, so that no interrupt inside start() can land in their import.
START_PATH = ("filelock", "http.client", "ssl", "ctypes", "concurrent.futures")


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


def test_what_a_start_imports_is_loaded_before_any_start() -> None:
    loaded = _loaded("import etcd_env")
    assert [name for name in START_PATH if name not in loaded] == []


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
