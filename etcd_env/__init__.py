"""etcd_env: a real, pinned etcd for test sessions, started fast and never left behind."""

from ._binary.install import InstallResult, install
from ._binary.pin import pinned_version
from ._binary.resolve import PINNED_SERIES, EtcdBinary, check_binary, resolve_binary
from ._cluster import EtcdCluster, MemberInfo
from ._common.environ import endpoint_environment
from ._common.errors import (
    ChecksumMismatchError,
    ClusterUnavailableError,
    EtcdEnvError,
    EtcdInstallError,
    EtcdNotFoundError,
    EtcdStartError,
    EtcdStartTimeout,
    EtcdVersionError,
    EtcdVersionWarning,
    ForeignListenerError,
    HostNotLocalError,
    NameClashError,
    PortBusyError,
    PortExhaustedError,
    ResourceLimitError,
    StateDirError,
)
from ._compat import find_free_port, stop_etcd
from ._existing import ExistingCluster
from ._nox import nox_etcd
from ._process.ports import PortReservation, reserve_port, reserve_specific_port
from ._process.registry import Leftover, find_leftovers, reap
from ._process.tls import ClientTls
from ._server import EtcdServer
from ._version import __version__ as __version__

__all__ = [
    "PINNED_SERIES",
    "ChecksumMismatchError",
    "ClientTls",
    "ClusterUnavailableError",
    "EtcdBinary",
    "EtcdCluster",
    "EtcdEnvError",
    "EtcdInstallError",
    "EtcdNotFoundError",
    "EtcdServer",
    "EtcdStartError",
    "EtcdStartTimeout",
    "EtcdVersionError",
    "EtcdVersionWarning",
    "ExistingCluster",
    "ForeignListenerError",
    "HostNotLocalError",
    "InstallResult",
    "Leftover",
    "MemberInfo",
    "NameClashError",
    "PortBusyError",
    "PortExhaustedError",
    "PortReservation",
    "ResourceLimitError",
    "StateDirError",
    "check_binary",
    "endpoint_environment",
    "find_free_port",
    "find_leftovers",
    "install",
    "nox_etcd",
    "pinned_version",
    "reap",
    "reserve_port",
    "reserve_specific_port",
    "resolve_binary",
    "stop_etcd",
]
