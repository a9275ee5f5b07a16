"""The ``etcd-env`` verbs about which etcd runs: ``which``, ``install``, ``uninstall``."""

from __future__ import annotations

import argparse
import json
import sys

from ._binary import cache as _cache
from ._binary.defects import KNOWN_DEFECTS, defects_of
from ._binary.install import install
from ._binary.pin import is_version, pinned_version, shipped_table, this_platform
from ._binary.resolve import pin_status, requested_version, resolve_binary
from ._common.environ import MIRROR_VAR


def which_command(args: argparse.Namespace) -> int:
    binary = resolve_binary(args.binary)
    status = pin_status(binary)
    expected, expected_ok = status["expected"], status["expected_ok"]
    if args.json:
        print(
            json.dumps(
                {
                    "path": binary.path,
                    "version": binary.version,
                    "source": binary.source,
                    # Kept from before the exact pin: true when the expectation (or, without one, the line) holds.
                    "pin_ok": expected_ok if expected is not None else binary.on_pin,
                    "serves_v2": binary.serves_v2,
                    **status,
                    "known_defects": [row.as_json() for row in defects_of(binary.version)],
                }
            )
        )
    else:
        print(f"binary: {binary.path}")
        print(f"version: {binary.version}")
        print(f"source: {binary.source}")
        # "installed: no" is what --json says with pin_installed: null.
        installed = status["pin_installed"] or "no (etcd-env install adds it)"
        print(f"pin: {status['pin']} (etcd_env/_binary/ETCD_VERSION); installed: {installed}")
        print(f"verdict: {status['verdict']}")
        print_defects(binary.version)
        if expected is not None:
            print(f"expected: {expected} ($ETCD_ENV_EXPECT_VERSION): " + ("verified" if expected_ok else "MISMATCH"))
    return 1 if expected is not None and not expected_ok else 0


def install_command(args: argparse.Namespace) -> int:
    if args.list:
        if args.version or args.sha256 or args.mirror:
            print("etcd-env install: --list takes no version, --sha256 or --mirror", file=sys.stderr)
            return 2
        return _list()
    result = install(
        args.version,
        mirror=args.mirror,
        sha256=args.sha256,
        progress=None if args.quiet else sys.stderr,
    )
    if result.downloaded is None:
        print(f"etcd {result.version} is already installed: {result.etcd}")
    else:
        fetched = result.downloaded
        print(
            f"installed etcd {result.version}: {result.etcd}\n"
            f"  from {fetched.url} ({fetched.size} bytes in {fetched.seconds:.1f}s), "
            f"SHA-256 {fetched.sha256} verified by {result.verified_by}"
        )
    if result.version != pinned_version():
        print(f"run it with: ETCD_ENV_VERSION={result.version} etcd-env run -- CMD")
    return 0


def print_defects(version: str) -> None:
    """The known-defect rows of one version, or nothing: what ``which`` adds under its verdict."""
    rows = defects_of(version)
    if rows:
        print(f"known defects of etcd {version} ({len(rows)}; all rows: etcd-env install --list):")
        for row in rows:
            print(f"  - {row.describe()}")


def _list() -> int:
    table = shipped_table()
    platform_name = this_platform()
    print(f"installable with a published SHA-256 on {platform_name} (other versions: --sha256 HEX):")
    for line, versions in table.by_line().items():
        here = [v + (" (pin)" if v == pinned_version() else "") for v in versions if table.lookup(v, platform_name)]
        print(f"  {line}: {', '.join(here) if here else 'none for this platform'}")
    print("known etcd defects (etcd_env/_binary/defects.py):")
    for row in KNOWN_DEFECTS:
        print(f"  - {row.describe()}")
    found = _cache.installed()
    root = _cache.cache_root()
    if not found:
        print(f"no etcd installed in {root} (etcd-env install adds the pin, {pinned_version()})")
        return 0
    print(f"installed in {root}:")
    for entry in found:
        marks = " (pin)" if entry.version == pinned_version() else ""
        how = entry.info.get("verified_by", "?")
        defects = defects_of(entry.version)
        flagged = f"  known defects: {len(defects)} (etcd-env which --binary PATH)" if defects else ""
        print(f"  {entry.version}{marks}  {entry.path / 'etcd'}  verified by {how}{flagged}")
    return 0


def uninstall_command(args: argparse.Namespace) -> int:
    removed = _cache.remove(args.version)
    if removed is None:
        print(f"etcd {args.version} is not installed in {_cache.cache_root()}", file=sys.stderr)
        return 1
    print(f"removed etcd {args.version}: {removed}")
    return 0


def _version(text: str) -> str:
    # Only a version names a directory of the cache: never a path (`uninstall ../../etc`).
    version = text.removeprefix("v")
    if not is_version(version):
        raise argparse.ArgumentTypeError(f"{text!r} is not an etcd version: give X.Y.Z, e.g. {pinned_version()}")
    return version


def install_for_run() -> None:
    """``etcd-env run --install``: install what resolution will look for ($ETCD_ENV_VERSION, else the pin)."""
    version = requested_version() or pinned_version()
    if _cache.cached_etcd(version) is None:
        result = install(version, progress=sys.stderr)
        print(f"etcd-env run: installed etcd {result.version}: {result.etcd}", file=sys.stderr)


def add_install_verbs(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    installer = verbs.add_parser(
        "install",
        help="download an official etcd release (default: the pin), verify its SHA-256, cache it",
        description="Download the official etcd release archive for this platform, verify its SHA-256 "
        "against the table shipped with etcd_env (or --sha256), and unpack it into the per-user cache "
        "($ETCD_ENV_CACHE_DIR, else $XDG_CACHE_HOME/etcd-env).",
    )
    installer.add_argument("version", nargs="?", help=f"etcd version (default: the pin, {pinned_version()})")
    installer.add_argument(
        "--mirror",
        help=f"download from this mirror, laid out like the release downloads: <URL>/v<V>/etcd-v<V>-<os>-<arch>.tar.gz "
        f"(default ${MIRROR_VAR}, else GitHub)",
    )
    installer.add_argument(
        "--sha256", metavar="HEX", help="accept the archive with this SHA-256 (from the release's SHA256SUMS)"
    )
    installer.add_argument("--list", action="store_true", help="show the installed versions")
    installer.add_argument("--quiet", action="store_true", help="no progress bar")
    installer.set_defaults(handler=install_command)

    remover = verbs.add_parser("uninstall", help="remove one installed etcd version from the cache")
    remover.add_argument("version", type=_version, help="the version to remove (see etcd-env install --list)")
    remover.set_defaults(handler=uninstall_command)
