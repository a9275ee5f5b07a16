"""The errors etcd_env raises: each names its cause and the fix.

Every class also derives from the builtin exception the reference raised for the
same failure, so code written against PyTorch's ``EtcdServer`` keeps catching them.
"""

from __future__ import annotations


class EtcdEnvError(Exception):
    """Base class of every error etcd_env raises on purpose."""


class EtcdNotFoundError(EtcdEnvError, FileNotFoundError):
    """No usable etcd binary at any of the places searched."""


class EtcdVersionError(EtcdEnvError, RuntimeError):
    """The etcd binary is unreadable, or its version cannot do what was asked."""


class EtcdVersionWarning(UserWarning):
    """The etcd binary works but is not the pinned release line."""


class StateDirError(EtcdEnvError, PermissionError):
    """A directory etcd_env needs is not private to this user or not writable."""


class SettingError(EtcdEnvError, ValueError):
    """A setting (an environment variable such as ``ETCD_ENV_PORT_RANGE``) has a value etcd_env cannot use."""


class PortBusyError(EtcdEnvError, OSError):
    """A port that was asked for explicitly is taken."""


class HostNotLocalError(EtcdEnvError, OSError):
    """The host to listen on is not an address of this machine."""


class PortExhaustedError(EtcdEnvError, RuntimeError):
    """No free port could be reserved in the allowed range."""


class EtcdStartError(EtcdEnvError, RuntimeError):
    """etcd did not come up; carries etcd's exit code and the tail of its log."""

    def __init__(self, message: str, *, returncode: int | None = None, log_tail: str = "") -> None:
        if log_tail:
            message = f"{message}\n--- last lines of etcd's log ---\n{log_tail}"
        super().__init__(message)
        self.returncode = returncode
        self.log_tail = log_tail


class EtcdStartTimeout(EtcdStartError, TimeoutError):
    """etcd did not answer as healthy within the caller's timeout."""


class ForeignListenerError(EtcdStartError):
    """Something other than the etcd we started answered on its port."""


class NameClashError(EtcdEnvError, RuntimeError):
    """A server name's lock is held by another process (a reaper looking at it); retried under a fresh name."""


class ResourceLimitError(EtcdEnvError, OSError):
    """This process ran out of file descriptors (``RLIMIT_NOFILE``) while starting etcd."""


class ClusterUnavailableError(EtcdEnvError, ConnectionError):
    """An existing cluster's endpoints could not be reached or are unhealthy."""


class EtcdInstallError(EtcdEnvError, RuntimeError):
    """``etcd-env install`` could not download, verify or unpack an etcd release; nothing was cached."""


class CacheUnusableError(EtcdInstallError):
    """The install cache cannot be read (no home directory, no permission, a file where a directory belongs).

    Resolution treats that as "nothing cached" and goes on; only a version asked for from the cache fails.
    """


class ChecksumMismatchError(EtcdInstallError):
    """A downloaded archive's SHA-256 is not the one expected; it was discarded."""
