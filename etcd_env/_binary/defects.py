"""Known defects of etcd releases that meet etcd_env's users, and which of them a version has.

One table, read by ``etcd-env which``, ``etcd-env install --list`` and the pytest report
header, so the three never disagree. Each row names the upstream report it rests on; a
range covers only what that source states (the CVE sources speak of the 3.5 line, so the
rows do not claim anything about 3.4).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

Version = tuple[int, int, int]


@dataclass(frozen=True)
class KnownDefect:
    """Affects versions ``first <= v < before``."""

    first: Version
    before: Version
    defect: str
    breaks: str
    reference: str
    workaround: str

    @property
    def versions(self) -> str:
        low = ".".join(map(str, self.first))
        if self.before[1:] == (self.first[1] + 1, 0) and self.before[0] == self.first[0]:
            return f"every {self.first[0]}.{self.first[1]} ({low} and later on that line)"
        return f"{low} to before {'.'.join(map(str, self.before))}"

    def affects(self, version: str) -> bool:
        parsed = _parse(version)
        return parsed is not None and self.first <= parsed < self.before

    def describe(self) -> str:
        return (
            f"{self.defect} [{self.versions}]; breaks: {self.breaks}; upstream: {self.reference}; "
            f"workaround: {self.workaround}"
        )

    def as_json(self) -> dict[str, str]:
        row = asdict(self)
        row["first"], row["before"] = (".".join(map(str, self.first)), ".".join(map(str, self.before)))
        return {"versions": self.versions, **row}


#: The v2 directory-TTL row first: it is the one that decides which line torch's v1 rendezvous needs.
DIR_TTL_REFRESH = KnownDefect(
    first=(3, 5, 0),
    before=(3, 6, 0),
    defect='refreshing the TTL of a v2 directory fails ("Raft Internal Error ... Not a file")',
    breaks=(
        "torch's v1 etcd rendezvous (torchrun --rdzv-backend=etcd): its lease thread renewing "
        "<prefix>/run_<id> dies on its first pass, and the run's tree expires after its 7200 s TTL, "
        "failing the next re-rendezvous"
    ),
    reference="etcd-io/etcd#13589 (from etcd-io/etcd PR #11939, first in v3.5.0; unchanged through release-3.5)",
    workaround=(
        "etcd 3.4 (etcd-env install 3.4.13, or Debian's etcd-server), or torch's etcd-v2 backend "
        "(--rdzv-backend=etcd-v2), which refreshes keys, not directories"
    ),
)

_FLATCAR = "flatcar/Flatcar#2352"
_CLIENT_TOOLS_ONLY = "nothing etcd_env relies on (the source names etcdctl/etcdutl, not the server); scanners flag it"
KNOWN_DEFECTS: tuple[KnownDefect, ...] = (
    DIR_TTL_REFRESH,
    KnownDefect(
        first=(3, 5, 0),
        before=(3, 5, 19),
        defect="CVE-2025-22869 (golang.org/x/crypto embedded in etcdctl and etcdutl)",
        breaks=_CLIENT_TOOLS_ONLY,
        reference=_FLATCAR,
        workaround="etcd 3.5.19 or later (the pin)",
    ),
    KnownDefect(
        first=(3, 5, 0),
        before=(3, 5, 21),
        defect="CVE-2025-30204 (github.com/golang-jwt/jwt/v4 embedded in etcdctl)",
        breaks=_CLIENT_TOOLS_ONLY,
        reference=_FLATCAR,
        workaround="etcd 3.5.21 or later (the pin)",
    ),
    KnownDefect(
        first=(3, 5, 0),
        before=(3, 5, 28),
        defect="CVE-2026-33186 (google.golang.org/grpc, GHSA-p77j-4mvh-x3m3)",
        breaks="nothing etcd_env relies on is known to; scanners flag the release as critical",
        reference=f"{_FLATCAR}; etcd-io/etcd#21495",
        workaround="etcd 3.5.28 or later (the pin)",
    ),
    KnownDefect(
        first=(3, 5, 0),
        before=(3, 5, 30),
        defect="CVE-2026-44283",
        breaks="nothing etcd_env relies on is known to; scanners flag the release",
        reference="gardener/etcd-druid#1432 (asks for 3.5.30+ to fix it)",
        workaround="etcd 3.5.30 or later (the pin)",
    ),
    KnownDefect(
        first=(3, 5, 0),
        before=(3, 5, 33),
        defect="CVE-2026-73500 (a TLS listener never times out handshakes)",
        breaks=(
            "a server started with TLS (tls=True, --tls): anyone who can reach its port can exhaust it "
            "with connections that never send a ClientHello"
        ),
        reference=f"{_FLATCAR} (fixed in 3.5.33, 3.6.14, 3.7.1)",
        workaround="etcd 3.5.33 or later (the pin); etcd_env's default loopback listener limits who can reach it",
    ),
)

_NUMBERS = re.compile(r"^(\d+)\.(\d+)\.(\d+)")


def _parse(version: str) -> Version | None:
    match = _NUMBERS.match(version.strip().removeprefix("v"))
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def defects_of(version: str) -> list[KnownDefect]:
    """The rows that affect ``version``, in table order."""
    return [row for row in KNOWN_DEFECTS if row.affects(version)]
