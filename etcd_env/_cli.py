"""The ``etcd-env`` command: each verb is a small function over the public API."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from . import _shell
from ._cli_install import add_install_verbs, install_for_run, which_command
from ._cluster import EtcdCluster
from ._common.environ import ENDPOINTS_VAR, endpoint_environment
from ._common.errors import EtcdEnvError, EtcdStartTimeout
from ._existing import ExistingCluster
from ._process.registry import find_leftovers, live_servers, reap
from ._process.spawn import death_signal_setter
from ._server import EtcdServer
from ._values import port_number, timeout_seconds
from ._version import __version__

Handler = Callable[[argparse.Namespace], int]


def _exit_status(returncode: int) -> int:
    # A child killed by signal N exits the shell way, 128 + N.
    return 128 - returncode if returncode < 0 else returncode


def run_command(command: Sequence[str], environment: dict[str, str], *, keep_command: bool = False) -> int:
    """Run ``command`` with ``environment`` added; every SIGINT/SIGTERM/SIGHUP reaches it once.

    The command runs in a process group of its own. A signal sent to etcd-env (or to
    etcd-env's group, as a CI runner's timeout does) is forwarded to that group once;
    the command's group never receives it directly as well. On a terminal the
    command's group is made the foreground group, so Ctrl-C goes to it straight from
    the terminal and not to etcd-env at all; the terminal is handed back afterwards.

    A signal that cannot be forwarded (SIGKILL to etcd-env or its group, as a CI
    runner's hard timeout sends) would leave the command running in its own group,
    talking to an etcd that died with etcd-env. So on Linux the command gets the
    death signal etcd gets (``PR_SET_PDEATHSIG``, SIGKILL), unless ``keep_command``.
    """
    terminal = _controlling_terminal()
    try:
        child = subprocess.Popen(
            list(command),
            env={**os.environ, **environment},
            preexec_fn=_own_group(terminal, None if keep_command else death_signal_setter()),  # noqa: PLW1509 - setpgid, tcsetpgrp, prctl only
        )
    except FileNotFoundError:
        print(f"etcd-env: command not found: {command[0]}", file=sys.stderr)
        return 127
    except OSError as error:  # not executable, or not a format this system can run
        print(f"etcd-env: cannot run {command[0]}: {error.strerror}", file=sys.stderr)
        return 126

    def forward(signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        return _exit_status(_wait(child, terminal))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if terminal is not None:
            _give_terminal(terminal, os.getpgrp())


def _wait(child: subprocess.Popen[bytes], terminal: int | None) -> int:
    """The command's exit code. On a terminal, Ctrl-Z stops the command's group only: then
    etcd-env hands the terminal back and stops too, so the shell regains it, and carries on
    (terminal to the command, SIGCONT to its group) when the shell resumes it with ``fg``."""
    if terminal is None:
        return child.wait()
    while True:
        _, status = os.waitpid(child.pid, os.WUNTRACED)
        if not os.WIFSTOPPED(status):
            child.returncode = os.waitstatus_to_exitcode(status)
            return child.returncode
        _give_terminal(terminal, os.getpgrp())
        os.kill(os.getpid(), signal.SIGSTOP)  # SIGSTOP: a SIGTSTP to an orphaned group is discarded
        _give_terminal(terminal, child.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGCONT)


def _controlling_terminal() -> int | None:
    """stdin's terminal when etcd-env is in its foreground group (then Ctrl-C comes from it)."""
    try:
        if os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp():
            return 0
    except OSError:
        pass
    return None


def _give_terminal(fd: int, pgid: int) -> None:
    # Called from a group that may be in the background: SIGTTOU would stop us, so block it.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU})
    try:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(fd, pgid)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _own_group(terminal: int | None, die_with_parent: Callable[[], None] | None) -> Callable[[], None]:
    def in_child() -> None:
        # Before exec: a group of its own, and the terminal's foreground before it can read a byte.
        os.setpgid(0, 0)
        if terminal is not None:
            _give_terminal(terminal, os.getpgrp())
        if die_with_parent is not None:
            die_with_parent()

    return in_child


def _run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("etcd-env run: give a command after --, e.g. etcd-env run -- pytest", file=sys.stderr)
        return 2
    server: EtcdServer | EtcdCluster
    shaping = _server_shaping_options(args)
    if args.endpoints:
        return _run_on_existing(args.endpoints, "--endpoints", shaping, command, keep_command=args.keep_command)
    inherited = os.environ.get(ENDPOINTS_VAR, "").strip()
    if inherited and not shaping:
        return _run_on_existing(inherited, f"${ENDPOINTS_VAR}", shaping, command, keep_command=args.keep_command)
    if inherited:
        # Options given on this command line are more deliberate than a variable inherited from
        # a surrounding `etcd-env run` or nox session: start what they describe, and say so.
        print(
            f"etcd-env run: {', '.join(shaping)} given: starting a new server; "
            f"${ENDPOINTS_VAR} (an existing cluster) is not used for this command",
            file=sys.stderr,
        )
    if args.members < 1:
        print(f"etcd-env run: --members must be 1 or more, not {args.members}", file=sys.stderr)
        return 2
    if args.members > 1:
        if args.port is not None:
            print(
                "etcd-env run: --port names one client port, and a cluster reserves one per member: "
                "leave --port out with --members",
                file=sys.stderr,
            )
            return 2
        server = EtcdCluster(args.members, binary=args.binary, host=args.host, tls=args.tls)
    else:
        server = EtcdServer(binary=args.binary, host=args.host, client_port=args.port, tls=args.tls)
    if args.install:
        install_for_run()
    server.start(timeout=args.timeout)
    try:
        return run_command(command, server.environment(), keep_command=args.keep_command)
    finally:
        server.stop()


def _server_shaping_options(args: argparse.Namespace) -> list[str]:
    """The options of `run` that describe a server to start."""
    given = (
        ("--members", args.members != 1),
        ("--port", args.port is not None),
        ("--tls", args.tls),
        ("--binary", args.binary is not None),
    )
    return [flag for flag, present in given if present]


def _run_on_existing(endpoints: str, source: str, shaping: list[str], command: list[str], *, keep_command: bool) -> int:
    """Nothing is started: the command gets the existing cluster's variables, after a health check."""
    if shaping:
        print(
            f"etcd-env run: --endpoints names an existing cluster, so nothing is started, but "
            f"{', '.join(shaping)} describe a server to start. Drop {', '.join(shaping)} to use the "
            "existing cluster, or drop --endpoints to start a new one.",
            file=sys.stderr,
        )
        return 2
    try:
        existing = ExistingCluster(endpoints, source=source)
        existing.start()
    except ValueError as error:  # a malformed URL list: the user's input, said plainly
        print(f"etcd-env run: {error}", file=sys.stderr)
        return 2
    try:
        return run_command(command, existing.environment(), keep_command=keep_command)
    finally:
        existing.stop()


def _reap(args: argparse.Namespace) -> int:
    found, verb = (find_leftovers(), "left over") if args.dry_run else (reap(), "reclaimed")
    for leftover in found:
        print(f"{verb}: {leftover.describe()}")
    if not found:
        print("nothing left over")
    return 1 if found and args.check else 0


def _up(args: argparse.Namespace) -> int:
    if args.members < 1 or (args.members > 1 and args.port is not None):
        args.usage_parser.error("--members must be 1 or more, and --port names one client port: not with --members")
    state, started = _shell.up(
        binary=args.binary, host=args.host, port=args.port, timeout=args.timeout, members=args.members, tls=args.tls
    )
    print(f"{'started' if started else 'already up'}: {state.describe()}")
    print('point this shell at it: eval "$(etcd-env env)"   stop it: etcd-env down')
    return 0


def _down(args: argparse.Namespace) -> int:
    state = _shell.down()
    print(f"stopped: {state.describe()}" if state is not None else "no detached server is up")
    return 0


def _env(args: argparse.Namespace) -> int:
    state = _shell.read_state()
    if args.unset:
        names = state.environment() if state is not None else endpoint_environment(["http://127.0.0.1:2379"])
        for name in names:
            print(f"unset {name}")
        return 0
    if state is None:
        print("etcd-env env: no detached server is up; start one with `etcd-env up`", file=sys.stderr)
        return 1
    for name, value in state.environment().items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def _status(args: argparse.Namespace) -> int:
    state = _shell.read_state()
    servers = live_servers()
    if args.json:
        detached = None if state is None else {**state.environment(), "pid": state.etcd_pid, "log": state.log}
        print(json.dumps({"detached": detached, "live_servers": servers}))
        return 0
    print(f"detached (etcd-env up): {state.describe() if state is not None else 'none'}")
    print(f"live servers of this user: {len(servers)}")
    for info in servers:
        where, pid, owner = info.get("client_url", "?"), info.get("pid", "?"), info.get("owner_pid", "?")
        print(f"  {info.get('name')}: {where} pid {pid}, owner pid {owner}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    return _shell.serve(
        directory=Path(args.state_dir),
        binary=args.binary,
        host=args.host,
        port=args.port,
        timeout=args.timeout,
        members=args.members,
        tls=args.tls,
    )


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--binary", help="etcd binary to use (default: resolved, see `etcd-env which`)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port_number, help="client port (default: a free one, reserved)")
    parser.add_argument("--timeout", type=_timeout, default=60, help="seconds to wait for etcd to serve")


def _port_number(text: str) -> int:
    try:
        return port_number(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{error}, or leave --port out for a free one") from None


def _timeout(text: str) -> float:
    try:
        return timeout_seconds(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_cluster_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--members", type=int, default=1, help="start a local cluster of N members (default 1); all are exported"
    )
    parser.add_argument(
        "--tls", action="store_true", help="serve https with a throwaway CA; ETCDCTL_CACERT etc. exported"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="etcd-env", description="A managed etcd for test runs.")
    parser.add_argument("--version", action="version", version=f"etcd-env {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    which = verbs.add_parser("which", help="show the etcd that would run, its version and pin")
    which.add_argument("--binary", help="check this binary instead of resolving one")
    which.add_argument("--json", action="store_true", help="print JSON")
    which.set_defaults(handler=which_command)
    add_install_verbs(verbs)

    run = verbs.add_parser("run", help="start etcd, run a command with its endpoint exported, stop etcd")
    _add_server_options(run)
    _add_cluster_options(run)
    run.add_argument(
        "--endpoints",
        help=f"use this existing cluster (comma-separated client URLs; default ${ENDPOINTS_VAR}): nothing is started",
    )
    run.add_argument("--install", action="store_true", help="first install the pin (or $ETCD_ENV_VERSION) if missing")
    run.add_argument(
        "--keep-command",
        action="store_true",
        help="let the command keep running if etcd-env is killed (default on Linux: it is killed with etcd-env)",
    )
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    run.set_defaults(handler=_run)

    reaper = verbs.add_parser("reap", help="stop and remove servers whose owner died")
    reaper.add_argument("--dry-run", action="store_true", help="only list what is left over")
    reaper.add_argument("--check", action="store_true", help="exit 1 if anything was left over")
    reaper.set_defaults(handler=_reap)

    starter = verbs.add_parser("up", help="start a detached etcd that outlives this shell (idempotent)")
    _add_server_options(starter)
    _add_cluster_options(starter)
    starter.set_defaults(handler=_up)

    status = verbs.add_parser("status", help="show the detached etcd and this user's live servers")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_status)

    environment = verbs.add_parser("env", help='print export lines for the detached etcd: eval "$(etcd-env env)"')
    environment.add_argument("--unset", action="store_true", help="print unset lines instead")
    environment.set_defaults(handler=_env)

    stopper = verbs.add_parser("down", help="stop the detached etcd")
    stopper.set_defaults(handler=_down)

    for verb, sub in verbs.choices.items():
        sub.set_defaults(usage_parser=sub, verb=verb)
    return parser


def _serve_parser() -> argparse.ArgumentParser:
    """The supervisor `up` starts: not for people, so kept out of the usage and the verb choices."""
    serve = argparse.ArgumentParser(prog=f"etcd-env {_shell.SERVE_VERB}")
    _add_server_options(serve)
    _add_cluster_options(serve)
    serve.add_argument("--state-dir", required=True)
    serve.set_defaults(handler=_serve, usage_parser=serve, verb=_shell.SERVE_VERB)
    return serve


def _parse(argv: list[str]) -> argparse.Namespace:
    if argv[:1] == [_shell.SERVE_VERB]:
        return _serve_parser().parse_args(argv[1:])
    args, extras = build_parser().parse_known_args(argv)
    if extras:
        # Said with the verb's own usage, not the top-level one (argparse's default for subcommands).
        usage_parser: argparse.ArgumentParser = args.usage_parser
        usage_parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def _timeout_hint(args: argparse.Namespace, error: EtcdStartTimeout) -> str:
    """The timeout said in the CLI's words: the flag to raise, not the API call underneath."""
    message = f"etcd was not healthy within --timeout {args.timeout:g} s; pass a longer --timeout, or see etcd's log"
    return f"{message} below for why it is stuck\n--- last lines of etcd's log ---\n{error.log_tail}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(list(sys.argv[1:] if argv is None else argv))
    handler: Handler = args.handler
    try:
        return handler(args)
    except EtcdStartTimeout as error:
        print(f"etcd-env {args.verb}: {_timeout_hint(args, error)}", file=sys.stderr)
        return 1
    except EtcdEnvError as error:
        print(f"etcd-env: {error}", file=sys.stderr)
        return 1
