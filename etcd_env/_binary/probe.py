"""What version an etcd binary is: ``etcd --version``, bounded in time and cached.

The probe runs a binary nobody has vetted yet, so it holds a deadline whatever the binary
does, and leaves nothing running behind it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path

from .._common.errors import EtcdVersionError
from .._common.paths import cache_dir, write_atomically
from .pin import HOW_TO_GET_ETCD

#: Seconds ``etcd --version`` may take when the caller gives no deadline.
PROBE_TIMEOUT = 30

_VERSION_LINE = re.compile(r"^etcd Version:\s*(\d+)\.(\d+)\.(\d+)\S*\s*$", re.MULTILINE)


_memory_cache: dict[str, str] = {}


def _cache_key(path: Path) -> str:
    info = path.stat()
    return f"{path.resolve()}|{info.st_size}|{info.st_mtime_ns}"


def read_version(path: Path, timeout: float | None = None) -> str:
    """``etcd --version``, cached per (path, size, mtime) in memory and on disk.

    The probe costs a process start (tens of milliseconds); the cache makes every
    start after the first on this machine skip it. The cache is only an optimisation:
    a state dir that cannot be read or written never fails a start through it.
    """
    key = _cache_key(path)
    if key in _memory_cache:
        return _memory_cache[key]
    on_disk = _read_version_cache()
    version = on_disk.get(key)
    if version is None:
        version = probe_version(path, timeout=timeout)
        on_disk[key] = version
        _write_version_cache(on_disk)
    _memory_cache[key] = version
    return version


def _read_version_cache() -> dict[str, str]:
    try:
        loaded = json.loads((cache_dir() / "versions.json").read_text())
    except (OSError, ValueError):  # StateDirError is an OSError too
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _write_version_cache(entries: dict[str, str]) -> None:
    """On a full or read-only disk the cache is skipped (write_atomically leaves no scratch file)."""
    with contextlib.suppress(OSError):  # StateDirError is an OSError too
        write_atomically(cache_dir() / "versions.json", json.dumps(entries))


def probe_version(path: Path, *, timeout: float | None = None) -> str:
    """Run ``etcd --version`` within ``timeout`` seconds (at most :data:`PROBE_TIMEOUT`).

    The deadline holds whatever the binary does: its output is read with a timeout, never
    to end-of-file alone, since a ``--version`` that leaves a daemon holding its stdout
    would otherwise keep the pipe open for as long as that daemon lives. The probe runs
    in a process group of its own, killed whole when the probe ends; on Linux so is
    anything that escaped it (``setsid``) still holding the probe's pipe.
    """
    limit = PROBE_TIMEOUT if timeout is None else max(0.05, min(timeout, PROBE_TIMEOUT))
    try:
        probe = subprocess.Popen(
            [str(path), "--version"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as error:
        raise EtcdVersionError(
            f"could not run `{path} --version`: {error}. Is this an etcd binary?\n{HOW_TO_GET_ETCD}"
        ) from error
    assert probe.stdout is not None  # stdout=PIPE above
    try:
        raw, exited = _read_until_exit(probe, probe.stdout.fileno(), time.monotonic() + limit)
    finally:
        _kill_probe_leftovers(probe, probe.stdout.fileno())
        probe.stdout.close()
        probe.wait()
    if not exited:
        if timeout is not None and timeout < PROBE_TIMEOUT:
            # The caller's own deadline cut the probe short: on a loaded machine that may be all it was.
            raise EtcdVersionError(
                f"`{path} --version` did not answer within the start's timeout ({limit:.2f}s) and was killed. "
                "A working etcd answers in milliseconds, a loaded machine may need more: give a longer "
                "timeout (start(timeout=...), --timeout, --etcd-timeout); if it still hangs, this binary is "
                f"not a working etcd.\n{HOW_TO_GET_ETCD}"
            )
        raise EtcdVersionError(
            f"`{path} --version` did not answer within {limit:.1f}s and was killed. A working etcd answers "
            f"in milliseconds: this binary hangs, or it is not etcd.\n{HOW_TO_GET_ETCD}"
        )
    output = raw.decode(errors="replace")
    match = _VERSION_LINE.search(output)
    if probe.returncode != 0 or match is None:
        shown = output.strip()[:300] or "(no output)"
        raise EtcdVersionError(
            f"`{path} --version` exited {probe.returncode} without an `etcd Version: X.Y.Z` line "
            f"(it printed: {shown!r}). This is not an etcd binary.\n{HOW_TO_GET_ETCD}"
        )
    return ".".join(match.groups())


#: How often the probe's reader looks whether the probe exited while something else holds its pipe.
_PROBE_POLL = 0.05


def _read_until_exit(probe: subprocess.Popen[bytes], fd: int, deadline: float) -> tuple[bytes, bool]:
    """The probe's output until end-of-file, or until it exited (then what is already in the pipe).

    Returns (output, whether the probe exited before ``deadline``). The probe is left unreaped
    (``WNOWAIT``), so its group id cannot be reused before ``_kill_probe_leftovers`` signals it.
    """
    chunks: list[bytes] = []
    os.set_blocking(fd, False)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return b"".join(chunks), _exited(probe)
        readable, _, _ = select.select([fd], [], [], min(remaining, _PROBE_POLL))
        exited = _exited(probe)  # looked at before draining: whatever it wrote is in the pipe by now
        if readable or exited:
            eof = _drain(fd, chunks)
            if eof or exited:
                return b"".join(chunks), exited or _wait_exit(probe, deadline)


def _drain(fd: int, chunks: list[bytes]) -> bool:
    """Read what is in the pipe now; return whether it reached end-of-file."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return False
        if not chunk:
            return True
        chunks.append(chunk)


def _exited(probe: subprocess.Popen[bytes]) -> bool:
    if not hasattr(os, "waitid"):  # macOS before Python 3.13: reaped here, its group signalled just after
        return probe.poll() is not None
    try:
        return os.waitid(os.P_PID, probe.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _wait_exit(probe: subprocess.Popen[bytes], deadline: float) -> bool:
    # The pipe closed; the process follows within moments, or the deadline decides.
    while not _exited(probe):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


def _kill_probe_leftovers(probe: subprocess.Popen[bytes], fd: int) -> None:
    """SIGKILL the probe's group; if something still holds its pipe, every process of that one's session.

    Only the probe's descendants can hold the pipe, and none of them can be in our session (the
    probe starts a new one), so the sessions killed are the probe's own or ones it ``setsid``'d.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(probe.pid, signal.SIGKILL)
    ours = os.getsid(0)
    sessions = set()
    for pid in _holding_pipe(fd):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            sessions.add(os.getsid(pid))
    sessions.discard(ours)
    for pid in _in_sessions(sessions):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _in_sessions(sessions: set[int]) -> list[int]:
    if not sessions:
        return []
    members = []
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError), open(f"{entry.path}/stat", "rb") as stat:
                    # After the command's ")": state, ppid, pgrp, session.
                    if int(stat.read().rsplit(b")", 1)[1].split()[3]) in sessions:
                        members.append(int(entry.name))
    return members


def _holding_pipe(fd: int) -> list[int]:
    """The other processes that hold the pipe ``fd`` reads (Linux: found through /proc; elsewhere none)."""
    if _drain_is_eof(fd):
        return []
    target = f"pipe:[{os.fstat(fd).st_ino}]"
    holders = []
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and int(entry.name) != os.getpid() and _writes_to(entry.path, target):
                holders.append(int(entry.name))
    return holders


def _writes_to(process: str, target: str) -> bool:
    """Whether ``process`` holds ``target`` open for writing. A read end is not holding the probe's
    output open (ours is, for a moment, in a sibling another thread forked and has not exec'd yet)."""
    with contextlib.suppress(OSError):  # gone, or another user's
        for link in os.scandir(f"{process}/fd"):
            with contextlib.suppress(OSError, ValueError, StopIteration):  # closed meanwhile
                if str(Path(link.path).readlink()) != target:
                    continue
                info = Path(f"{process}/fdinfo/{link.name}").read_text().splitlines()
                flags = next(line.split()[1] for line in info if line.startswith("flags:"))
                if int(flags, 8) & os.O_ACCMODE != os.O_RDONLY:
                    return True
    return False


def _drain_is_eof(fd: int) -> bool:
    # Nothing holds the write end once a read gives end-of-file: the common case costs no /proc scan.
    try:
        return os.read(fd, 65536) == b""
    except BlockingIOError:
        return False
