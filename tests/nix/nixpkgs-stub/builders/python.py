"""Builders for the stand-in's Python: run by the host's base interpreter (host.nix), never by a venv.

    python.py interpreter            $out: a bare interpreter (``venv --without-pip``), no packages
    python.py package PNAME...       $out/lib/pythonX.Y/site-packages: these distributions and what
                                     they require, linked from the host's site-packages
    python.py env PNAME...           $out: a bare interpreter with those packages in its own site-packages
                                     and their console scripts in $out/bin (python.withPackages)

nixpkgs builds every package from source; the stand-in takes the host's installed copies
instead (the same files, linked), so it models *where* packages are, never that nixpkgs
has or builds them.
"""

# Nix passes a derivation's attributes as environment variables under their own (camelCase) names;
# packaging is imported only once the host's site-packages are on sys.path.
# ruff: noqa: SIM112, PLC0415

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

OUT = Path(os.environ["out"])
HOST_PYTHON = os.environ["hostPython"]
HOST_SITE = [p for p in os.environ["hostSitePackages"].split(":") if p]
SITE = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"

# nixpkgs attribute names that are not the distribution's own name.
DIST_NAMES = {"pytest-check-hook": "pytest"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def host_distributions() -> dict[str, metadata.Distribution]:
    found: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions(path=HOST_SITE):
        found.setdefault(canonical(dist.metadata["Name"]), dist)
    return found


def closure(pnames: list[str]) -> list[metadata.Distribution]:
    """The distributions and everything they require (nixpkgs: propagatedBuildInputs)."""
    sys.path[:0] = HOST_SITE  # packaging, to evaluate requirement markers as pip does
    from packaging.requirements import Requirement

    available = host_distributions()
    todo = [canonical(DIST_NAMES.get(p, p)) for p in pnames]
    seen: dict[str, metadata.Distribution] = {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in available:
            sys.exit(f"nixpkgs-stub: {name} is not installed in the host's site-packages {HOST_SITE}")
        seen[name] = available[name]
        for line in seen[name].requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonical(requirement.name))
    return list(seen.values())


def link_into(site: Path, dists: list[metadata.Distribution]) -> None:
    site.mkdir(parents=True, exist_ok=True)
    for dist in dists:
        root = Path(str(dist.locate_file("")))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in sorted(tops):
            if top.endswith(".pth") or top == "__pycache__" or not (root / top).exists():
                continue
            target = site / top
            if not target.exists():
                target.symlink_to(root / top)


def interpreter(out: Path) -> None:
    subprocess.run([HOST_PYTHON, "-m", "venv", "--without-pip", str(out)], check=True)


def console_scripts(out: Path, dists: list[metadata.Distribution]) -> None:
    for dist in dists:
        for entry in dist.entry_points.select(group="console_scripts"):
            module, _, attr = entry.value.partition(":")
            script = out / "bin" / entry.name
            if script.exists():
                continue
            call = f"{attr.split('.')[0]}()" if attr else "None"
            script.write_text(
                f"#!{out}/bin/python\nimport sys\nfrom {module} import {attr.split('.')[0]}\nsys.exit({call})\n"
            )
            script.chmod(0o755)


def main() -> None:
    mode, *pnames = sys.argv[1:]
    if mode == "interpreter":
        interpreter(OUT)
    elif mode == "package":
        link_into(OUT / SITE, closure(pnames))
    elif mode == "env":
        interpreter(OUT)
        dists = closure(pnames)
        link_into(OUT / SITE, dists)
        console_scripts(OUT, dists)
    else:
        sys.exit(f"nixpkgs-stub: unknown mode {mode}")


if __name__ == "__main__":
    main()
