"""The project's noxfile on the nox this suite runs with, and the floors its lowest session installs.

Run by every row of the matrix, so the noxfile is loaded by PyPI's newest nox, by nixos-26.05's
2026.4.10 and by the `[test]` floor (2024.4.15, in `nox -s lowest`).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .conftest import REPO, child_env

pytest.importorskip("nox", reason="nox is not installed: pip install -e '.[test]'")

if sys.version_info >= (3, 11):
    import tomllib
else:
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml before Python 3.11 needs tomli")

NOXFILE = REPO / "noxfile.py"


def test_the_noxfile_loads_on_this_nox() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "nox", "-f", str(NOXFILE), "-l"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    for session in ("tests", "rendezvous_tests", "lint", "lowest", "docs", "package", "tests-3.13"):
        assert f" {session} -> " in listed.stdout, listed.stdout


def test_the_lowest_session_pins_every_direct_dependency_at_its_declared_floor() -> None:
    script = f"import json, runpy; print(json.dumps(runpy.run_path({str(NOXFILE)!r})['lowest_constraints']()))"
    run = subprocess.run(
        [sys.executable, "-c", script], env=child_env(), capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr
    pins = dict(line.split("==") for line in json.loads(run.stdout.splitlines()[-1]))

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    project = pyproject["project"]
    declared = [
        Requirement(text)
        for text in [
            *pyproject["build-system"]["requires"],
            *project["dependencies"],
            *(r for extra in project["optional-dependencies"].values() for r in extra),
        ]
    ]
    for requirement in declared:
        name = canonicalize_name(requirement.name)
        if any(spec.operator == "==" for spec in requirement.specifier):
            assert name not in pins  # an exact pin is already its own floor
            continue
        assert name in pins, f"{requirement} has no floor in the lowest session"
        lower = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        assert lower == [pins[name]], (requirement, pins[name])
    assert {"python-etcd", "filelock", "pytest", "pytest-xdist", "nox", "trustme", "hatchling"} <= set(pins)
