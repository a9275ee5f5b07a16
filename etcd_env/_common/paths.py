"""Per-user private directories: the one place every other module finds its files.

Everything lives under one directory per user (mode 0700) below the system temp
dir, or ``$ETCD_ENV_STATE_DIR``. A directory that exists but is owned by someone
else is refused: in a shared /tmp that is how another user would plant lock
files or read a server's keys. So is a symbolic link in its place (another user
could point it at a directory of yours, which we would then chmod and fill), and
a directory whose parent lets others swap it for one (writable, not sticky).
Each private directory is opened with ``O_NOFOLLOW`` and checked and chmod'ed
through that descriptor, never through its name, as ssh-agent and systemd treat
runtime directories. Inside a verified 0700 directory only we can add or swap
entries, so what lies below it is safe to reach by name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

from .environ import STATE_DIR_VAR
from .errors import StateDirError

#: A relative ``$ETCD_ENV_STATE_DIR`` or ``$TMPDIR`` made absolute the first time it is read, so a
#: later ``chdir`` never moves the state dir away from the records and locks already in it.
_absolute: dict[str, Path] = {}


def state_root(environ: os._Environ[str] | dict[str, str] | None = None) -> Path:
    """``$ETCD_ENV_STATE_DIR`` (``~`` expanded, as for ``$ETCD_ENV_BINARY``), else ``etcd-env-UID`` in the temp dir.

    The temp dir is decided here, not by ``tempfile.gettempdir()``: that one silently falls back
    to /tmp when ``$TMPDIR`` is full or unwritable, and the state would then live where
    ``reap`` run with the same ``$TMPDIR`` never looks. An unusable temp dir is an error
    (``private_dir`` names it), never a move.
    """
    env = os.environ if environ is None else environ
    configured = env.get(STATE_DIR_VAR)
    if configured:
        return _made_absolute(configured)
    return _made_absolute(_temp_dir(env)) / f"etcd-env-{os.getuid()}"


def _temp_dir(env: os._Environ[str] | dict[str, str]) -> str:
    # The variables tempfile reads, in its order; then the platform's own default, not a fallback chain.
    for name in ("TMPDIR", "TEMP", "TMP"):
        if env.get(name):
            return env[name]
    return tempfile.gettempdir() if os.name == "nt" else "/tmp"  # noqa: S108 - the per-user 0700 dir is below it


def _made_absolute(raw: str) -> Path:
    decided = _absolute.get(raw)
    if decided is None:
        decided = _absolute[raw] = Path(os.path.abspath(Path(raw).expanduser()))  # noqa: PTH100 - no symlink resolution
    return decided


def private_dir(path: Path, *, create: bool = True) -> Path:
    """Create ``path`` (and parents) as 0700, or check that it already is private and ours.

    ``path`` itself must be a real directory, not a symbolic link: see the module docstring.
    With ``create=False`` a missing ``path`` raises :class:`FileNotFoundError` instead.
    """
    try:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)  # the caller's own path: links there are theirs
            with contextlib.suppress(FileExistsError):
                path.mkdir(mode=0o700)  # at a planted link mkdir fails (EEXIST); it never follows one
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        if not create and error.errno == errno.ENOENT:
            raise
        if error.errno == errno.ELOOP or path.is_symlink():
            raise StateDirError(
                f"{path} is a symbolic link, and etcd_env never follows one to its private directories "
                "(another user could plant it to make us use, and chmod, a directory of their choosing). "
                f"Remove the link, or set {STATE_DIR_VAR} to a real directory of your own."
            ) from None
        raise StateDirError(
            f"cannot create the private directory {path}: {error.strerror}. "
            f"Set {STATE_DIR_VAR} to a directory you can write, or fix its permissions."
        ) from error
    try:
        _check_private(path, fd)
    finally:
        os.close(fd)
    return path


def _check_private(path: Path, fd: int) -> None:
    info = os.fstat(fd)
    if info.st_uid != os.getuid():
        raise StateDirError(
            f"{path} belongs to uid {info.st_uid}, not to you (uid {os.getuid()}); "
            f"refusing to use it. Remove it or set {STATE_DIR_VAR} to a directory of your own."
        )
    parent = path.parent.stat()
    if parent.st_mode & stat.S_IWOTH and not parent.st_mode & stat.S_ISVTX:
        raise StateDirError(
            f"{path.parent} is writable by every user and not sticky, so anyone could replace {path} "
            f"after it was checked. Set {STATE_DIR_VAR} to a directory inside one only you can write."
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        try:
            os.fchmod(fd, 0o700)  # through the descriptor just checked, never through the name
        except OSError as error:
            raise StateDirError(
                f"{path} is readable by other users and cannot be made private: {error.strerror}. "
                f"Set {STATE_DIR_VAR} to a private directory."
            ) from error
    if not os.access(path, os.W_OK | os.X_OK):
        raise StateDirError(f"{path} is not writable by you. Set {STATE_DIR_VAR} to a directory you can write.")


def _sub(name: str, root: Path | None) -> Path:
    # The root first: mkdir(parents=True) would give it the umask's mode, not 0700.
    return private_dir(private_dir(root or state_root()) / name)


def existing_sub(name: str, root: Path | None = None) -> Path | None:
    """The private ``name`` dir as :func:`_sub` checks it, or None where it does not exist yet.

    For looking (``reap --dry-run``, ``status``, the plugin's leftover summary): a look at a
    state dir that was never used must leave none behind.
    """
    try:
        return private_dir(private_dir(root or state_root(), create=False) / name, create=False)
    except FileNotFoundError:
        return None


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
    """Readers of ``path`` see the old text or the new, never half of it: write beside it, then rename.

    A failed write (a full disk) leaves no scratch file behind.
    """
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with open(fd, "w", encoding="utf-8") as scratch_file:
            scratch_file.write(text)
        scratch.replace(path)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
