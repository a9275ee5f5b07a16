"""``etcd-env install``: download an official etcd release, verify it, unpack it into the cache.

The order is what makes it safe to kill at any point: download into a scratch file in
the cache, check its SHA-256, unpack the binaries into a scratch directory, run the
unpacked ``etcd --version``, and only then rename the directory to ``<root>/<version>``.
A per-version file lock makes N concurrent installs download once; the others find
the finished directory when they get the lock.
"""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TextIO

from .._common.environ import CACHE_DIR_VAR, MIRROR_VAR
from .._common.errors import ChecksumMismatchError, EtcdInstallError, EtcdVersionError
from . import cache as _cache
from .download import Downloaded, ProgressBar, download
from .pin import (
    OFFICIAL_DOWNLOADS,
    PLATFORMS,
    ChecksumTable,
    archive_name,
    archive_url,
    is_sha256,
    is_version,
    pinned_version,
    shipped_table,
    sums_url,
    this_platform,
)
from .probe import probe_version


@dataclass(frozen=True)
class InstallResult:
    version: str
    directory: Path
    etcd: Path
    downloaded: Downloaded | None  # None: it was already installed
    verified_by: str


def expected_sha256(version: str, platform_name: str, sha256: str | None, table: ChecksumTable) -> tuple[str, str]:
    """(hex, how it is known) for one archive, or one clear error saying where to get the hash."""
    if sha256 is not None:
        vouched = sha256.strip().lower()
        if not is_sha256(vouched):
            raise EtcdInstallError(f"--sha256 takes 64 hex digits (a SHA-256), not {sha256!r}")
        return vouched, "--sha256 (vouched for by the caller)"
    known = table.lookup(version, platform_name)
    if known is not None:
        return known, f"etcd_env's checksum table ({table.describe_source(version, platform_name)})"
    if version in table.sha256:
        listed = ", ".join(sorted(table.sha256[version]))
        raise EtcdInstallError(
            f"etcd_env's checksum table has no SHA-256 for etcd {version} on {platform_name} (it lists {listed}; "
            f"no public table of {platform_name} hashes for it was found). Take the hash of "
            f"{archive_name(version, platform_name)} from the release's {sums_url(version)} and pass it: "
            f"etcd-env install --sha256 HEX {version}"
        )
    versions = table.versions(platform_name)
    span = f"{versions[0]}-{versions[-1]}" if versions else "none"
    raise EtcdInstallError(
        f"etcd {version} is not in etcd_env's checksum table (it knows {span} for {platform_name}), so its "
        f"archive cannot be verified. If {version} is a real release, take the hash of "
        f"{archive_name(version, platform_name)} from {sums_url(version)} and pass it: "
        f"etcd-env install --sha256 HEX {version}"
    )


@contextmanager
def _disk_errors(root: Path, doing: str) -> Iterator[None]:
    """A full or read-only disk said as what it is, with the fix."""
    try:
        yield
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise EtcdInstallError(
                f"no space left in {root} while {doing}; nothing was cached. Free some space, or set "
                f"{CACHE_DIR_VAR} to a directory on another filesystem."
            ) from error
        if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise EtcdInstallError(
                f"cannot write to the etcd cache {root} while {doing}: {error.strerror}. Set {CACHE_DIR_VAR} "
                "to a directory you can write."
            ) from error
        raise


def _copy_member(source: IO[bytes], target: Path) -> None:
    with target.open("xb") as sink:
        while chunk := source.read(1 << 20):
            sink.write(chunk)
    target.chmod(0o755)


def unpack(archive: Path, into: Path, top: str) -> list[str]:
    """Copy ``<top>/etcd`` (required), ``etcdctl`` and ``etcdutl`` out of a release tar.gz or zip.

    Only those names are read, each streamed into a fresh file: no path from the archive
    is ever used as a path here, so a crafted archive cannot write elsewhere.
    """
    import tarfile  # noqa: PLC0415 - only an install unpacks: kept out of `import etcd_env`
    import zipfile  # noqa: PLC0415 - the same

    wanted = {f"{top}/{name}": name for name in _cache.BINARIES}
    found: list[str] = []
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            for entry in bundle.infolist():
                if entry.filename in wanted and not entry.is_dir():
                    with bundle.open(entry) as source:
                        _copy_member(source, into / wanted[entry.filename])
                    found.append(wanted[entry.filename])
    else:
        try:
            with tarfile.open(archive, "r:*") as bundle:
                for member in bundle:
                    name = member.name.removeprefix("./")
                    if name in wanted and member.isreg():
                        extracted = bundle.extractfile(member)
                        if extracted is not None:
                            _copy_member(extracted, into / wanted[name])
                            found.append(wanted[name])
        except (tarfile.TarError, EOFError, zipfile.BadZipFile) as error:
            raise EtcdInstallError(f"{archive.name} is not a readable release archive: {error}") from error
    if "etcd" not in found:
        raise EtcdInstallError(
            f"the archive holds no {top}/etcd: it is not laid out like an official etcd release "
            f"(one top-level directory {top}/ with etcd, etcdctl, etcdutl)"
        )
    return found


def install(
    version: str | None = None,
    *,
    mirror: str | None = None,
    sha256: str | None = None,
    table: ChecksumTable | None = None,
    platform_name: str | None = None,
    environ: os._Environ[str] | dict[str, str] | None = None,
    progress: TextIO | None = None,
) -> InstallResult:
    """Install one etcd release into the cache (the pin by default) and return where it is.

    ``table`` replaces the shipped checksum table (tests build their own archives);
    ``platform_name`` replaces this machine's ``<os>-<arch>`` (a test unpacks a darwin zip).
    ``progress`` is a terminal stream for the progress bar; None keeps quiet.
    """
    env = os.environ if environ is None else environ
    version = (version or pinned_version()).removeprefix("v")
    if not is_version(version):
        raise EtcdInstallError(f"{version!r} is not an etcd version (e.g. {pinned_version()})")
    platform_name = platform_name or this_platform()
    if platform_name not in PLATFORMS:
        raise EtcdInstallError(
            f"etcd publishes no release archive for {platform_name} that etcd-env installs (it installs "
            f"{', '.join(PLATFORMS)}). Build etcd {version} from source or use your package manager's, and "
            "set ETCD_ENV_BINARY to it."
        )
    want, verified_by = expected_sha256(version, platform_name, sha256, table or shipped_table())
    url = archive_url(mirror or env.get(MIRROR_VAR) or OFFICIAL_DOWNLOADS, version, platform_name)
    root = _cache.ensure_root(env)
    with _disk_errors(root, "taking the install lock"), _cache.install_lock(root, version):
        present = _cache.cached_etcd(version, env)
        if present is not None:
            return InstallResult(version, present.parent, present, None, "already installed")
        _cache.sweep_partials(root, version)
        return _install_locked(
            root, version, platform_name=platform_name, url=url, want=want, verified_by=verified_by, progress=progress
        )


def _install_locked(
    root: Path,
    version: str,
    *,
    platform_name: str,
    url: str,
    want: str,
    verified_by: str,
    progress: TextIO | None,
) -> InstallResult:
    name = archive_name(version, platform_name)
    scratch_file: Path | None = None
    scratch_dir: Path | None = None
    try:
        with _disk_errors(root, f"downloading {name}"):
            scratch_file = _cache.partial_path(root, version, directory=False, suffix="-" + name)
            bar = ProgressBar(progress, name) if progress is not None and progress.isatty() else None
            with scratch_file.open("wb") as sink:
                fetched = download(url, sink, progress=bar)
        if fetched.sha256 != want:
            raise ChecksumMismatchError(
                f"the SHA-256 of {url} is {fetched.sha256}, but {verified_by} says {want}. The archive was "
                "discarded and nothing was cached: a corrupted download, or a mirror serving something else."
            )
        with _disk_errors(root, f"unpacking {name}"):
            scratch_dir = _cache.partial_path(root, version, directory=True)
            unpack(scratch_file, scratch_dir, top=f"etcd-v{version}-{platform_name}")
            try:
                reported = probe_version(scratch_dir / "etcd")  # within probe.PROBE_TIMEOUT
            except EtcdVersionError as error:
                raise EtcdInstallError(f"the etcd unpacked from {url} does not run here: {error}") from error
            if reported != version.split("-", maxsplit=1)[0]:
                raise EtcdInstallError(
                    f"the archive {url} holds etcd {reported}, not {version}; nothing was cached. "
                    "The mirror serves the wrong file under this name."
                )
            info = {
                "version": version,
                "platform": platform_name,
                "url": url,
                "sha256": fetched.sha256,
                "verified_by": verified_by,
                "bytes": fetched.size,
                "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            (scratch_dir / _cache.INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
            final = _cache.version_dir(root, version)
            scratch_dir.rename(final)
            scratch_dir = None
        return InstallResult(version, final, final / "etcd", fetched, verified_by)
    finally:
        for leftover in (scratch_file, scratch_dir):
            if leftover is not None:
                _cache.discard(leftover)
