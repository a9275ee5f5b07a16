"""EtcdServer against a real etcd: the reference's API, failures, and cleanup."""

from __future__ import annotations

import http.server
import subprocess
import threading
from pathlib import Path

import pytest

import etcd_env
from etcd_env import (
    EtcdServer,
    EtcdStartError,
    EtcdStartTimeout,
    ForeignListenerError,
    PortBusyError,
    StateDirError,
    find_free_port,
    reserve_port,
    stop_etcd,
)
from etcd_env._process.ports import ephemeral_range, port_is_reserved
from etcd_env._process.readiness import HttpHealthCheck
from etcd_env._process.spawn import pid_alive

from .conftest import assert_gone, server_dirs


def assert_cleaned_up(state: Path, pids: list[int], ports: list[int]) -> None:
    for pid in pids:
        assert_gone(pid)
    assert server_dirs(state) == [], "no server directory may be left"
    for port in ports:
        assert not port_is_reserved(port), f"port {port} is still reserved"


def test_reference_api_round_trip(state_dir: Path) -> None:
    server = EtcdServer()
    assert server.get_port() == -1  # nothing happens before start()
    assert not (state_dir / "servers").exists()
    server.start()
    try:
        assert server.get_host() == "localhost"  # as the reference reports; tests/test_localhost.py has the rest
        port = server.get_port()
        assert server.get_endpoint() == f"localhost:{port}"
        client = server.get_client()
        client.write("/etcd_env/key", "value")
        assert client.read("/etcd_env/key").value == "value"
        assert client.version_prefix == "/v2"
        low, high = ephemeral_range()
        assert not low <= port <= high
        assert port_is_reserved(port)
        pid = server.pid
        assert pid is not None and pid_alive(pid)
        data_dir = server.data_dir
        assert data_dir is not None and data_dir.is_dir()
        assert data_dir.parent.stat().st_mode & 0o777 == 0o700
    finally:
        server.stop()
    assert_cleaned_up(state_dir, [pid], [port])
    assert not data_dir.exists()
    server.stop()  # a second stop is harmless


def test_context_manager_and_restart(state_dir: Path) -> None:
    server = EtcdServer()
    with server:
        first = server.get_port()
        server.get_client().write("/a", "1")
    with server:
        assert server.get_client().read("/", recursive=True) is not None
    assert not port_is_reserved(first)


def test_listens_on_loopback_only(state_dir: Path) -> None:
    with EtcdServer() as server:
        argv = server.argv
        urls = [argv[i + 1] for i, arg in enumerate(argv) if arg.startswith("--listen-")]
        assert len(urls) == 2 and all(url.split("://")[1].startswith("127.0.0.1:") for url in urls)


def test_v3_only_server(state_dir: Path) -> None:
    with EtcdServer(enable_v2=False) as server:
        assert server.running


def test_given_data_dir_is_kept_if_it_existed(tmp_path: Path, state_dir: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    with EtcdServer(data_dir=mine):
        pass
    assert (mine / "member").is_dir(), "a data dir the caller made is the caller's: never removed"
    created = tmp_path / "new" / "data"
    with EtcdServer(data_dir=created):
        assert created.is_dir()
    assert not created.exists(), "a data dir etcd_env created is removed with the server"


def test_log_file_option(tmp_path: Path, state_dir: Path) -> None:
    log = tmp_path / "logs" / "etcd.log"
    with EtcdServer(log_file=log):
        pass
    assert "serving client traffic" in log.read_text() or "ready to serve" in log.read_text()


def test_explicit_busy_port_fails_at_once(state_dir: Path) -> None:
    with EtcdServer() as running, pytest.raises(PortBusyError, match="reserved by another etcd_env server"):
        EtcdServer(client_port=running.get_port()).start()
    assert server_dirs(state_dir) == []


def test_foreign_listener_on_requested_port(state_dir: Path) -> None:
    with reserve_port() as reservation:
        port = reservation.port
    foreign = http.server.HTTPServer(("127.0.0.1", port), http.server.SimpleHTTPRequestHandler)
    try:
        with pytest.raises(PortBusyError, match="in use by another program"):
            EtcdServer(client_port=port).start(timeout=5)
    finally:
        foreign.server_close()
    assert server_dirs(state_dir) == []


def test_readiness_refuses_a_foreign_http_server() -> None:
    foreign = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=foreign.serve_forever, daemon=True)
    thread.start()
    try:
        check = HttpHealthCheck(f"http://127.0.0.1:{foreign.server_port}", "etcd-env-x")
        with pytest.raises(ForeignListenerError, match="not etcd"):
            check.healthy_once(2.0)
    finally:
        foreign.shutdown()
        foreign.server_close()


def test_timeout_too_short(state_dir: Path) -> None:
    with pytest.raises(EtcdStartTimeout) as caught:
        EtcdServer().start(timeout=0.001)
    assert isinstance(caught.value, TimeoutError)  # what the reference raised
    assert "longer timeout" in str(caught.value)
    assert server_dirs(state_dir) == []


def test_etcd_exiting_at_start_reports_its_log(state_dir: Path) -> None:
    with pytest.raises(EtcdStartError) as caught:
        EtcdServer(extra_args=["--no-such-flag"]).start(timeout=30)
    error = caught.value
    assert error.returncode not in (None, 0)
    assert "no-such-flag" in error.log_tail
    assert "exited with code" in str(error)
    assert server_dirs(state_dir) == []


def test_unwritable_data_dir(tmp_path: Path, state_dir: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(StateDirError, match="not a writable directory"):
        EtcdServer(data_dir=blocker / "data").start()
    assert server_dirs(state_dir) == []


def test_unusable_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("ETCD_ENV_STATE_DIR", str(blocker / "state"))
    with pytest.raises(StateDirError, match="ETCD_ENV_STATE_DIR"):
        EtcdServer().start()


def test_stderr_pipe_is_refused(state_dir: Path) -> None:
    with pytest.raises(ValueError, match="block etcd"):
        EtcdServer().start(stderr=subprocess.PIPE)
    assert server_dirs(state_dir) == []


def test_stderr_stream_receives_etcds_log(tmp_path: Path, state_dir: Path) -> None:
    sink = tmp_path / "stderr.txt"
    with sink.open("w") as stream, EtcdServer() as server:
        server.stop()
        server.start(stderr=stream)
    assert "etcd" in sink.read_text()


def test_started_from_a_thread_that_exits(state_dir: Path) -> None:
    # PR_SET_PDEATHSIG fires when the forking *thread* exits; the spawner thread prevents that.
    server = EtcdServer()
    starter = threading.Thread(target=server.start)
    starter.start()
    starter.join()
    try:
        assert server.pid is not None
        threading.Event().wait(0.3)
        assert pid_alive(server.pid)
        server.get_client().write("/still", "here")
    finally:
        server.stop()


def test_find_free_port_and_stop_etcd_keep_their_meaning(tmp_path: Path, state_dir: Path) -> None:
    sock = find_free_port()
    port = sock.getsockname()[1]
    low, high = ephemeral_range()
    assert not low <= port <= high
    sock.close()
    binary = etcd_env.resolve_binary()
    data_dir = tmp_path / "data"
    process = subprocess.Popen(
        [binary.path, "--data-dir", str(data_dir), "--listen-client-urls", f"http://127.0.0.1:{port}",
         "--advertise-client-urls", f"http://127.0.0.1:{port}", "--listen-peer-urls", "http://127.0.0.1:0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    stop_etcd(process, str(data_dir))
    assert process.returncode is not None
    assert not data_dir.exists()


def test_etcd_variables_of_the_caller_do_not_reach_etcd(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # etcd would read these as --name and --data-dir, overriding the managed flags.
    monkeypatch.setenv("ETCD_NAME", "not-ours")
    monkeypatch.setenv("ETCD_DATA_DIR", str(state_dir / "elsewhere"))
    with EtcdServer() as server:
        assert server.get_client().write("/k", "v").value == "v"
        log = server.log_path.read_text() if server.log_path is not None else ""
        assert server.name is not None and server.name in log
    assert "not-ours" not in log and "unrecognized environment variable" not in log
    assert not (state_dir / "elsewhere").exists()
