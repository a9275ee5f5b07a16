"""Per-user private directories: the one place every other module finds its files.

Everything lives under one directory per user (mode 0700) below the system temp
dir, or ``$ETCD_ENV_STATE_DIR``. A directory that exists but is owned by someone
else, or readable by others, is refused: in a shared /tmp that is how another
user would plant lock files or read a server's keys.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from ._environ import STATE_DIR_VAR
from ._errors import StateDirError


def state_root(environ: os._Environ[str] | dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    configured = env.get(STATE_DIR_VAR)
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"etcd-env-{os.getuid()}"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) as 0700, or check that it already is private and ours."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
    except OSError as error:
        raise StateDirError(
            f"cannot create the private directory {path}: {error.strerror}. "
            f"Set {STATE_DIR_VAR} to a directory you can write, or fix its permissions."
        ) from error
    if info.st_uid != os.getuid():
        raise StateDirError(
            f"{path} belongs to uid {info.st_uid}, not to you (uid {os.getuid()}); "
            f"refusing to use it. Remove it or set {STATE_DIR_VAR} to a directory of your own."
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        try:
            path.chmod(0o700)
        except OSError as error:
            raise StateDirError(
                f"{path} is readable by other users and cannot be made private: {error.strerror}. "
                f"Set {STATE_DIR_VAR} to a private directory."
            ) from error
    if not os.access(path, os.W_OK | os.X_OK):
        raise StateDirError(f"{path} is not writable by you. Set {STATE_DIR_VAR} to a directory you can write.")
    return path


def _sub(name: str, root: Path | None) -> Path:
    # The root first: mkdir(parents=True) would give it the umask's mode, not 0700.
    return private_dir(private_dir(root or state_root()) / name)


def ports_dir(root: Path | None = None) -> Path:
    return _sub("ports", root)


def servers_dir(root: Path | None = None) -> Path:
    return _sub("servers", root)


def cache_dir(root: Path | None = None) -> Path:
    return _sub("cache", root)


def writable_dir(path: Path, *, what: str, fix: str) -> bool:
    """Make sure ``path`` is a directory we can write; return whether we created it."""
    existed = path.is_dir()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        probe = path / f".etcd-env-probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise StateDirError(f"{what} {path} is not a writable directory ({error.strerror}). {fix}") from error
    return not existed


def write_atomically(path: Path, text: str) -> None:
    """Readers of ``path`` see the old text or the new, never half of it: write beside it, then rename."""
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    scratch.write_text(text)
    scratch.replace(path)
