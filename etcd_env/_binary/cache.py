"""The per-user cache of installed etcd releases: its layout, and nothing about downloading.

::

    <root>/                      $ETCD_ENV_CACHE_DIR, else $XDG_CACHE_HOME/etcd-env (~/.cache/etcd-env), 0700
      3.5.27/                    one complete, verified release: appears only by a rename
        etcd etcdctl etcdutl
        install.json             where it came from and how it was verified
      .3.5.27.lock               held while one process installs or removes 3.5.27
      .partial-3.5.27-*          an install in progress (or killed): never read, swept by the next install

Only ``<root>/<version>/etcd`` is ever resolved, so an install that dies halfway
leaves nothing a later resolve could pick up.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import UnixFileLock

from .._common.environ import CACHE_DIR_VAR
from .._common.errors import CacheUnusableError, EtcdInstallError, StateDirError
from .._common.locks import kernel_lock
from .._common.paths import private_dir
from .pin import is_version

INFO_FILE = "install.json"
PARTIAL_PREFIX = ".partial-"
BINARIES = ("etcd", "etcdctl", "etcdutl")


def cache_root(environ: os._Environ[str] | dict[str, str] | None = None) -> Path:
    """Where the cache is; :class:`CacheUnusableError` when it has no place (no home directory)."""
    env = os.environ if environ is None else environ
    configured = env.get(CACHE_DIR_VAR)
    try:
        if configured:
            return Path(configured).expanduser()
        xdg = env.get("XDG_CACHE_HOME")
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    except RuntimeError:  # `docker run --user 1234`: HOME unset and no passwd entry for the uid
        raise CacheUnusableError(
            f"the etcd-env cache has no place: HOME is unset and uid {os.getuid()} has no home directory. "
            f"Set {CACHE_DIR_VAR} to a directory of your own."
        ) from None
    return base / "etcd-env"


def ensure_root(environ: os._Environ[str] | dict[str, str] | None = None) -> Path:
    """The cache root, created 0700 (through ``_common.paths.private_dir``, which refuses what is not ours)."""
    root = cache_root(environ)
    try:
        return private_dir(root)
    except StateDirError as error:
        raise EtcdInstallError(
            f"the etcd cache {root} cannot be used: {error}\n"
            f"Set {CACHE_DIR_VAR} to a directory of your own that you can write."
        ) from error


def version_dir(root: Path, version: str) -> Path:
    if not is_version(version):
        raise ValueError(f"not an etcd version: {version!r}")
    return root / version


def install_lock(root: Path, version: str) -> UnixFileLock:
    """Held while one process installs or removes ``version``; the others wait for it."""
    return kernel_lock(root / f".{version}.lock", timeout=-1)


def _refuse_foreign(path: Path, info: os.stat_result, what: str) -> None:
    # A cache in a shared place (ETCD_ENV_CACHE_DIR=/tmp/...) must not run a binary someone else planted.
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o022:
        raise EtcdInstallError(
            f"refusing the cached {what} {path}: it is owned by uid {info.st_uid} or writable by others. "
            f"Remove it, or set {CACHE_DIR_VAR} to a directory of your own."
        )


def cached_etcd(version: str, environ: os._Environ[str] | dict[str, str] | None = None) -> Path | None:
    """``<root>/<version>/etcd`` if that version is installed (nothing is created by looking)."""
    root = cache_root(environ)
    directory = version_dir(root, version)
    binary = directory / "etcd"
    try:
        dir_info = directory.lstat()
        bin_info = binary.lstat()
    except FileNotFoundError:
        return None
    except OSError as error:  # HOME=/root for another user, ETCD_ENV_CACHE_DIR=/etc/passwd
        raise _unusable(root, error) from None
    if not stat.S_ISDIR(dir_info.st_mode) or not stat.S_ISREG(bin_info.st_mode):
        raise EtcdInstallError(
            f"{directory} is not an etcd-env install (a symlink or a stray file where one belongs). "
            f"Remove it and run `etcd-env install {version}`."
        )
    _refuse_foreign(directory, dir_info, "install")
    _refuse_foreign(binary, bin_info, "binary")
    return binary


@dataclass(frozen=True)
class Installed:
    version: str
    path: Path
    info: dict[str, Any]


def _unusable(root: Path, error: OSError) -> CacheUnusableError:
    return CacheUnusableError(
        f"the etcd-env cache {root} cannot be read ({error.strerror}). Set {CACHE_DIR_VAR} to a directory of your own."
    )


def installed(environ: os._Environ[str] | dict[str, str] | None = None) -> list[Installed]:
    root = cache_root(environ)
    try:
        if not root.is_dir():
            return []
        entries = sorted(root.iterdir())
    except OSError as error:
        raise _unusable(root, error) from None
    found = []
    for entry in entries:
        if not is_version(entry.name) or not (entry / "etcd").is_file():
            continue
        try:
            info = json.loads((entry / INFO_FILE).read_text())
        except (OSError, ValueError):
            info = {}
        found.append(Installed(entry.name, entry, info if isinstance(info, dict) else {}))
    return found


def partial_path(root: Path, version: str, *, directory: bool, suffix: str = "") -> Path:
    """A fresh scratch file or directory in the cache (same filesystem, so the final rename is atomic)."""
    prefix = f"{PARTIAL_PREFIX}{version}-"
    if directory:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    handle, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=root)
    os.close(handle)
    return Path(name)


def sweep_partials(root: Path, version: str) -> list[Path]:
    """Remove what killed installs of ``version`` left; call with its install lock held."""
    swept = sorted(root.glob(f"{PARTIAL_PREFIX}{version}-*"))
    for path in swept:
        discard(path)
    return swept


def discard(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove(version: str, environ: os._Environ[str] | dict[str, str] | None = None) -> Path | None:
    """Uninstall ``version``; returns the directory removed, or None if it was not installed."""
    root = cache_root(environ)
    directory = version_dir(root, version)
    try:
        if not root.is_dir():
            return None
    except OSError as error:
        raise _unusable(root, error) from None
    with install_lock(root, version):
        if not directory.exists() and not directory.is_symlink():
            return None
        # Renamed away first, so a resolve never sees half a directory.
        doomed = partial_path(root, version, directory=True)
        doomed.rmdir()
        directory.rename(doomed)
        discard(doomed)
    return directory
