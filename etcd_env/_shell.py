"""A long-lived etcd for interactive shells (``etcd-env up/status/env/down``).

``up`` starts a small supervisor process (``python -m etcd_env _serve``, with this
process's import path: see ``_pychild``) in its own
session, so it outlives the shell on purpose. The supervisor owns an ordinary
:class:`EtcdServer` (or, with ``--members N``, an :class:`EtcdCluster`): etcd dies
with it (the death signal), its watchdog removes the server's directory if it is
killed, and on SIGTERM or SIGINT (``down``) it stops etcd and removes its state file.
The state file records one server per user; a lock around ``up`` and ``down`` keeps two of them from racing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from filelock import UnixFileLock

from ._client import client_environment
from ._cluster import EtcdCluster
from ._common.errors import EtcdStartError
from ._common.locks import kernel_lock
from ._common.paths import existing_sub, private_dir, state_root, write_atomically
from ._process.spawn import command_line, log_tail, pid_alive, wait_gone
from ._process.tls import ClientTls
from ._pychild import module_command
from ._server import EtcdServer

STATE_FILE = "shell.json"
SERVE_VERB = "_serve"


def shell_dir(root: Path | None = None) -> Path:
    return private_dir(private_dir(root or state_root()) / "shell")


@dataclass(frozen=True)
class ShellState:
    """What ``up`` recorded about the detached server."""

    supervisor_pid: int
    etcd_pid: int
    name: str
    client_urls: list[str]
    log: str
    version: str
    started_at: float
    #: With ``up --tls``: the CA, client certificate and key files (in the server's private directory).
    tls: list[str] | None = None

    def environment(self) -> dict[str, str]:
        tls = ClientTls(*(Path(path) for path in self.tls)) if self.tls else None
        return client_environment(self.client_urls, tls)

    def describe(self) -> str:
        members = f", {len(self.client_urls)} members" if len(self.client_urls) > 1 else ""
        return (
            f"{self.client_urls[0]} (etcd {self.version}{members}, pid {self.etcd_pid}, "
            f"supervisor pid {self.supervisor_pid}, log {self.log})"
        )


def _lock(directory: Path) -> UnixFileLock:
    return kernel_lock(directory / "shell.lock", timeout=30)


def _supervisor_alive(pid: int) -> bool:
    # A dead supervisor's pid may be reused: it must still be our `_serve` process.
    return pid_alive(pid) and SERVE_VERB in command_line(pid)


def read_state(directory: Path | None = None) -> ShellState | None:
    """The running detached server, or None; a record whose supervisor died is removed."""
    parent = directory or existing_sub("shell")
    if parent is None:
        return None  # `status` and `env` only look: no state dir is made for that
    path = parent / STATE_FILE
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
        state = ShellState(**raw)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        path.unlink(missing_ok=True)
        return None
    if not _supervisor_alive(state.supervisor_pid):
        path.unlink(missing_ok=True)
        return None
    return state


def up(
    *,
    binary: str | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    timeout: float = 60,
    members: int = 1,
    tls: bool = False,
    directory: Path | None = None,
) -> tuple[ShellState, bool]:
    """Start the detached server unless one runs; return it and whether it was started now."""
    where = directory or shell_dir()
    with _lock(where):
        running = read_state(where)
        if running is not None:
            return running, False
        # Not `sys.executable -m etcd_env`: under nixpkgs' wrapper that interpreter cannot import etcd_env.
        argv = module_command("etcd_env", SERVE_VERB, "--state-dir", str(where), "--host", host)
        argv += ["--timeout", str(timeout)]
        if binary is not None:
            argv += ["--binary", binary]
        if port is not None:
            argv += ["--port", str(port)]
        if members != 1:
            argv += ["--members", str(members)]
        if tls:
            argv.append("--tls")
        supervisor_log = where / "supervisor.log"
        with open(supervisor_log, "wb") as log:
            supervisor = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                close_fds=True,
                start_new_session=True,  # no SIGHUP when the shell that ran `up` goes away
            )
        deadline = time.monotonic() + timeout + 10
        while True:
            state = read_state(where)
            if state is not None and state.supervisor_pid == supervisor.pid:
                return state, True
            returncode = supervisor.poll()
            if returncode is not None:
                raise EtcdStartError(
                    f"`etcd-env up` could not start etcd (the supervisor exited with code {returncode})",
                    returncode=returncode,
                    log_tail=log_tail(supervisor_log),
                )
            if time.monotonic() > deadline:
                supervisor.kill()
                supervisor.wait()
                raise EtcdStartError(
                    "`etcd-env up` timed out waiting for etcd; see the supervisor's log below",
                    log_tail=log_tail(supervisor_log),
                )
            time.sleep(0.01)


def down(*, timeout: float = 10, directory: Path | None = None) -> ShellState | None:
    """Stop the detached server; return what was stopped (None if nothing ran)."""
    where = directory or shell_dir()
    with _lock(where):
        state = read_state(where)
        if state is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.supervisor_pid, signal.SIGTERM)
        if not wait_gone(state.supervisor_pid, timeout):
            # etcd dies with its supervisor (death signal); the watchdog removes its files.
            with contextlib.suppress(ProcessLookupError):
                os.kill(state.supervisor_pid, signal.SIGKILL)
            wait_gone(state.supervisor_pid, 2.0)
        (where / STATE_FILE).unlink(missing_ok=True)
        return state


def serve(
    *,
    directory: Path,
    binary: str | None,
    host: str,
    port: int | None,
    timeout: float,
    members: int = 1,
    tls: bool = False,
) -> int:
    """The supervisor's body: run etcd until SIGTERM/SIGINT, or until etcd dies."""
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # outliving the shell is the point
    server: EtcdServer | EtcdCluster
    if members > 1:
        server = EtcdCluster(members, binary=binary, host=host, tls=tls)
    else:
        server = EtcdServer(binary=binary, host=host, client_port=port, tls=tls)
    server.start(timeout=timeout)
    path = directory / STATE_FILE
    try:
        if isinstance(server, EtcdCluster):
            first = server.member(0)  # the cluster's first member stands for it in `status`
            pid, name, log = first.pid, first.name, str(first.log_path)
        else:
            pid, name, log = server.pid, server.name or "", str(server.log_path)
        state = ShellState(
            supervisor_pid=os.getpid(),
            etcd_pid=pid or 0,
            name=name,
            client_urls=server.client_urls,
            log=log,
            version=server.binary.version if server.binary is not None else "?",
            started_at=time.time(),
            tls=[str(server.tls.ca), str(server.tls.cert), str(server.tls.key)] if server.tls is not None else None,
        )
        write_atomically(path, json.dumps(asdict(state)))
        print(f"etcd-env: serving {state.describe()}", flush=True)
        while not stop.wait(0.5):
            if not server.running:
                print(f"etcd-env: etcd exited; last lines of its log:\n{server.log_tail()}", flush=True)
                return 1
        return 0
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError, TypeError, OSError):
            if json.loads(path.read_text()).get("supervisor_pid") == os.getpid():
                path.unlink()
        server.stop()
