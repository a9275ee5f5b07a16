"""etcd_env: a real, pinned etcd for test sessions, started fast and never left behind."""

from ._binary import PINNED_SERIES, EtcdBinary, check_binary, resolve_binary
from ._cluster import EtcdCluster, MemberInfo
from ._compat import find_free_port, stop_etcd
from ._environ import endpoint_environment
from ._errors import (
    ClusterUnavailableError,
    EtcdEnvError,
    EtcdNotFoundError,
    EtcdStartError,
    EtcdStartTimeout,
    EtcdVersionError,
    EtcdVersionWarning,
    ForeignListenerError,
    PortBusyError,
    PortExhaustedError,
    StateDirError,
)
from ._existing import ExistingCluster
from ._nox import nox_etcd
from ._ports import PortReservation, reserve_port, reserve_specific_port
from ._registry import Leftover, find_leftovers, reap
from ._server import EtcdServer
from ._tls import ClientTls
from ._version import __version__ as __version__

__all__ = [
    "PINNED_SERIES",
    "ClientTls",
    "ClusterUnavailableError",
    "EtcdBinary",
    "EtcdCluster",
    "EtcdEnvError",
    "EtcdNotFoundError",
    "EtcdServer",
    "EtcdStartError",
    "EtcdStartTimeout",
    "EtcdVersionError",
    "EtcdVersionWarning",
    "ExistingCluster",
    "ForeignListenerError",
    "Leftover",
    "MemberInfo",
    "PortBusyError",
    "PortExhaustedError",
    "PortReservation",
    "StateDirError",
    "check_binary",
    "endpoint_environment",
    "find_free_port",
    "find_leftovers",
    "nox_etcd",
    "reap",
    "reserve_port",
    "reserve_specific_port",
    "resolve_binary",
    "stop_etcd",
]
