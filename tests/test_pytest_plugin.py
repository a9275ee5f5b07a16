"""The pytest plugin, run the way users run it: inner pytest sessions (pytester, in subprocesses)."""

from __future__ import annotations

import json

import pytest

from etcd_env import EtcdServer, resolve_binary

pytestmark = pytest.mark.usefixtures("state_dir")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # A subprocess: the plugin is loaded from its pytest11 entry point, as for a user.
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=180)


def test_default_fixtures_and_cleanup(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        import etcd, pytest
        from etcd_env import EtcdServer, resolve_binary
        from etcd_env._process import pid_alive

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


def test_fixture_factories_and_binary_option(pytester: pytest.Pytester):
    binary = resolve_binary().path
    pytester.makeconftest(
        """
        from etcd_env._pytest_plugin import etcd_noproc, etcd_proc

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
