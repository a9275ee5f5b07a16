"""The etcd command line for one member, decided in one place."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

#: Single-member timers: etcd's own time to serve drops from ~370 ms to ~60 ms with
#: these (measured, context.md). A single member has no peers to miss heartbeats from.
SINGLE_MEMBER_TIMERS = (10, 50)
#: A local cluster: the election timeout is how long writes stall after the leader dies
#: (measured on 2 cores, 3 members: 103 / 153 / 305 / 611 / 1266 ms median for elections of
#: 50 / 100 / 250 / 500 / 1000 ms), and none of these had a spurious election in 20-30 s
#: under 12 busy loops or 4 loops of torch import + matmul. 100 ms keeps a 10x margin over
#: the heartbeat (etcd's tuning guide) and room for a 100 ms stall on a loaded CI runner;
#: 50 ms would leave none. Figures and commands: the README, "Two design decisions".
CLUSTER_TIMERS = (10, 100)


class Executable(Protocol):
    """The etcd a command runs: already resolved and checked, by ``etcd_env._binary``'s ``EtcdBinary``.

    Only what the command line needs, so spawning etcd never reaches up to decide which etcd.
    """

    @property
    def path(self) -> str: ...

    @property
    def has_unsafe_no_fsync(self) -> bool: ...


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class MemberCommand:
    binary: Executable
    name: str
    data_dir: Path
    client_url: str
    peer_url: str
    initial_cluster: str
    cluster_token: str
    cluster_state: str = "new"
    heartbeat_ms: int = SINGLE_MEMBER_TIMERS[0]
    election_ms: int = SINGLE_MEMBER_TIMERS[1]
    enable_v2: bool = True
    tls: TlsFiles | None = None
    extra_args: Sequence[str] = field(default_factory=tuple)
    #: Where etcd listens for clients, when more than where it is reached (``localhost``: both loopbacks).
    listen_client_urls: Sequence[str] = field(default_factory=tuple)

    @classmethod
    def single_member(
        cls,
        binary: Executable,
        name: str,
        data_dir: Path,
        client_url: str,
        peer_url: str,
        *,
        timers: tuple[int, int] = SINGLE_MEMBER_TIMERS,
        enable_v2: bool = True,
        tls: TlsFiles | None = None,
        extra_args: Sequence[str] = (),
        listen_client_urls: Sequence[str] = (),
    ) -> MemberCommand:
        """A cluster of one: it is its own initial cluster, and its unique name is the token."""
        return cls(
            binary=binary,
            name=name,
            data_dir=data_dir,
            client_url=client_url,
            peer_url=peer_url,
            initial_cluster=f"{name}={peer_url}",
            cluster_token=name,
            heartbeat_ms=timers[0],
            election_ms=timers[1],
            enable_v2=enable_v2,
            tls=tls,
            extra_args=extra_args,
            listen_client_urls=tuple(listen_client_urls),
        )

    @staticmethod
    def environment() -> dict[str, str]:
        """The caller's environment without ``ETCD_*``: what etcd is started with.

        etcd reads every ``ETCD_<FLAG>`` variable as that flag, so a caller's ``ETCD_NAME`` or
        ``ETCD_DATA_DIR`` would quietly override the flags decided here, and etcd_env's own
        ``ETCD_ENV_*`` make it log a warning for each.
        """
        return {name: value for name, value in os.environ.items() if not name.startswith("ETCD_")}

    def argv(self) -> list[str]:
        argv = [
            self.binary.path,
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", ",".join(self.listen_client_urls or [self.client_url]),
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.initial_cluster,
            "--initial-cluster-token", self.cluster_token,
            "--initial-cluster-state", self.cluster_state,
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--election-timeout", str(self.election_ms),
            "--logger", "zap",
        ]  # fmt: skip
        if self.enable_v2:
            argv.append("--enable-v2")
        if self.binary.has_unsafe_no_fsync:
            # The data is thrown away with the server; fsync buys nothing here.
            argv.append("--unsafe-no-fsync")
        if self.tls is not None:
            argv += [
                "--trusted-ca-file", str(self.tls.ca),
                "--cert-file", str(self.tls.cert),
                "--key-file", str(self.tls.key),
                "--client-cert-auth",
                "--peer-trusted-ca-file", str(self.tls.ca),
                "--peer-cert-file", str(self.tls.cert),
                "--peer-key-file", str(self.tls.key),
                "--peer-client-cert-auth",
            ]  # fmt: skip
        argv += list(self.extra_args)
        return argv


#: The etcd flags etcd_env decides, and what to use instead of overriding them in ``extra_args``.
_MANAGED_FLAGS = {
    "name": "nothing: etcd_env names each member uniquely, which is how it finds them",
    "data-dir": "the data_dir option",
    "wal-dir": "the data_dir option",
    "listen-client-urls": "the host and client_port options",
    "advertise-client-urls": "the host and client_port options",
    "listen-peer-urls": "the host and peer_port options",
    "initial-advertise-peer-urls": "the host and peer_port options",
    "initial-cluster": "EtcdCluster(members=N)",
    "initial-cluster-token": "nothing: each server or cluster gets its own token",
    "initial-cluster-state": "nothing: etcd_env always starts a new cluster",
    "heartbeat-interval": "the heartbeat_ms option",
    "election-timeout": "the election_ms option",
    "enable-v2": "the enable_v2 option",
    "cert-file": "tls=True",
    "key-file": "tls=True",
    "trusted-ca-file": "tls=True",
    "client-cert-auth": "tls=True",
    "peer-cert-file": "tls=True",
    "peer-key-file": "tls=True",
    "peer-trusted-ca-file": "tls=True",
    "peer-client-cert-auth": "tls=True",
}


def check_extra_args(extra_args: Sequence[str]) -> tuple[str, ...]:
    """``extra_args`` as a tuple, refusing any that would override a flag etcd_env manages.

    An override would not just be ignored: a second ``--data-dir`` puts etcd's data
    where nothing removes it, a second ``--listen-client-urls`` serves where
    readiness never looks (or on every interface).
    """
    if isinstance(extra_args, str):
        raise TypeError(f"extra_args must be a list of arguments, not the string {extra_args!r}")
    for arg in extra_args:
        if not arg.startswith("-"):
            continue
        flag = arg.lstrip("-").split("=", 1)[0]  # Go accepts -flag, --flag and --flag=value
        if flag in _MANAGED_FLAGS:
            given = arg.split("=", 1)[0]
            raise ValueError(f"extra_args may not set {given}: etcd_env manages it; use {_MANAGED_FLAGS[flag]}.")
    return tuple(extra_args)
