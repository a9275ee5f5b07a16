"""The ``etcd-env`` command: each verb is a small function over the public API."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from types import FrameType

from ._binary import pin_report, resolve_binary
from ._errors import EtcdEnvError
from ._registry import find_leftovers, reap
from ._server import EtcdServer

Handler = Callable[[argparse.Namespace], int]


def _which(args: argparse.Namespace) -> int:
    binary = resolve_binary(args.binary)
    ok, expected, words = pin_report(binary)
    if args.json:
        print(
            json.dumps(
                {
                    "path": binary.path,
                    "version": binary.version,
                    "source": binary.source,
                    "pin_ok": ok,
                    "expected": expected,
                    "serves_v2": binary.serves_v2,
                }
            )
        )
    else:
        print(f"binary: {binary.path}")
        print(f"version: {binary.version}")
        print(f"source: {binary.source}")
        print(f"pin: {words}")
    return 0 if ok or not expected else 1


def _exit_status(returncode: int) -> int:
    # A child killed by signal N exits the shell way, 128 + N.
    return 128 - returncode if returncode < 0 else returncode


def run_command(command: Sequence[str], environment: dict[str, str]) -> int:
    """Run ``command`` with ``environment`` added, forwarding SIGINT/SIGTERM/SIGHUP to it."""
    try:
        child = subprocess.Popen(list(command), env={**os.environ, **environment})
    except FileNotFoundError:
        print(f"etcd-env: command not found: {command[0]}", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"etcd-env: command not executable: {command[0]}", file=sys.stderr)
        return 126

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        return _exit_status(child.wait())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("etcd-env run: give a command after --, e.g. etcd-env run -- pytest", file=sys.stderr)
        return 2
    server = EtcdServer(binary=args.binary, host=args.host, client_port=args.port)
    server.start(timeout=args.timeout)
    try:
        return run_command(command, server.environment())
    finally:
        server.stop()


def _reap(args: argparse.Namespace) -> int:
    if args.dry_run:
        leftovers = find_leftovers()
        for leftover in leftovers:
            print(f"left over: {leftover.describe()}")
        if not leftovers:
            print("nothing left over")
        return 1 if leftovers and args.check else 0
    reclaimed = reap()
    for leftover in reclaimed:
        print(f"reclaimed: {leftover.describe()}")
    if not reclaimed:
        print("nothing left over")
    return 1 if reclaimed and args.check else 0


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--binary", help="etcd binary to use (default: resolved, see `etcd-env which`)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="client port (default: a free one, reserved)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for etcd to serve")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="etcd-env", description="A managed etcd for test runs.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    which = verbs.add_parser("which", help="show the etcd that would run, its version and pin")
    which.add_argument("--binary", help="check this binary instead of resolving one")
    which.add_argument("--json", action="store_true", help="print JSON")
    which.set_defaults(handler=_which)

    run = verbs.add_parser("run", help="start etcd, run a command with its endpoint exported, stop etcd")
    _add_server_options(run)
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    run.set_defaults(handler=_run)

    reaper = verbs.add_parser("reap", help="stop and remove servers whose owner died")
    reaper.add_argument("--dry-run", action="store_true", help="only list what is left over")
    reaper.add_argument("--check", action="store_true", help="exit 1 if anything was left over")
    reaper.set_defaults(handler=_reap)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except EtcdEnvError as error:
        print(f"etcd-env: {error}", file=sys.stderr)
        return 1
