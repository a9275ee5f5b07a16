"""Checks of the Nix flake.

The lock policy is checked everywhere. The flake's wiring is checked when ``nix``
is installed, against the offline stand-in for nixpkgs in ``tests/nix/nixpkgs-stub``:
that proves the outputs evaluate, the dev shell exports the pinned etcd and
etcd_env honours it, never that real nixpkgs has or builds these packages (only an
online run of ``nix flake check`` proves that).
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

ROOT = Path(__file__).resolve().parent.parent
FLAKE_NIX = ROOT / "flake.nix"
FLAKE_LOCK = ROOT / "flake.lock"
STUB = Path("tests") / "nix" / "nixpkgs-stub"

# Debian's nix-bin runs as root without a daemon, a binary cache or GitHub only
# with these settings; they go in the environment so no nix.conf is touched.
NIX_CONFIG = "\n".join(
    [
        "experimental-features = nix-command flakes",
        "build-users-group =",
        "sandbox = false",
        "substituters =",
    ]
)

# What a fresh checkout gives the flake. Copied from the working tree, not from
# git HEAD, so uncommitted edits are what is tested; a git flake would not see
# untracked files at all, hence a plain directory and `path:` references.
COPIED = ("flake.nix", "flake.lock", "pyproject.toml", "etcd_env", str(STUB))

NIX_TIMEOUT = 180

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


def test_flake_pins_the_etcd_3_5_line_by_name() -> None:
    # Bare `etcd` is 3.6 in current nixpkgs, which has no v2 API.
    text = FLAKE_NIX.read_text()
    assert "pkgs.etcd_3_5" in text
    assert not re.search(r"pkgs\.etcd\b(?!_)", text)


# --- the wiring, against the stand-in: needs nix -----------------------------


@pytest.fixture
def nix() -> str:
    found = shutil.which("nix")
    if found is None:
        pytest.skip(NIX_MISSING)
    return found


@pytest.fixture
def nix_env(tmp_path: Path, nix: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {
        "NIX_CONFIG": NIX_CONFIG,
        # A private HOME and cache keep nix's fetcher cache and registries out of
        # the developer's own, and theirs out of the test.
        "HOME": str(home),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        # The stand-in's python3 is the first real python3 on PATH: put this
        # interpreter (which has etcd_env's dependencies) there.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), str(Path(nix).parent), "/usr/bin", "/bin"]),
        "LANG": "C.UTF-8",
    }


@pytest.fixture
def flake(tmp_path: Path) -> Path:
    copy = tmp_path / "src"
    for name in COPIED:
        source = ROOT / name
        target = copy / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return copy


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
    for system in systems:
        assert set(outputs["packages"][system]) == {"default", "etcd"}
        assert "default" in outputs["devShells"][system]
        assert "default" in outputs["apps"][system]
        assert "package" in outputs["checks"][system]


def _in_dev_shell(nix: str, env: dict[str, str], flake: Path, script: str) -> subprocess.CompletedProcess[str]:
    # Flags go before -c: everything after it is the command.
    return _run(
        [nix, "develop", *_stub_args(flake), f"path:{flake}", "-c", "sh", "-c", script],
        env,
        flake,
    )


@pytest.mark.nix
def test_dev_shell_exports_the_pinned_etcd(nix: str, nix_env: dict[str, str], flake: Path) -> None:
    system = _current_system(nix, nix_env, flake)
    etcd_out = _run(
        [
            nix,
            "eval",
            "--raw",
            *_stub_args(flake),
            f"path:{flake}#packages.{system}.etcd.outPath",
        ],
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
    # The stand-in's etcd_3_5 reports a 3.5 version as nixpkgs' does.
    assert re.fullmatch(r"3\.5\.\d+", expected), expected
    assert version_line == f"etcd Version: {expected}"


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
    # nixpkgs' etcd_3_5 is a symlinkJoin, and so is the stand-in's: etcd_env may
    # report the link's target, which is the same file.
    assert os.path.realpath(which["path"]) == os.path.realpath(binary)
    assert "ETCD_ENV_BINARY" in which["source"]
    assert which["version"] == expected
    assert which["expected"] == expected
    assert which["pin_ok"] is True


@pytest.mark.nix
@pytest.mark.parametrize(
    ("original", "broken", "messages"),
    [
        pytest.param("etcd_3_5", "etcd_3_55", ["etcd_3_55"], id="misspelt-attribute"),
        pytest.param("pkgs.etcd_3_5", "pkgs.etcd", ["needs etcd 3.5", "3.6."], id="bare-etcd-is-3.6"),
    ],
)
def test_a_broken_flake_fails_check(
    original: str, broken: str, messages: list[str], nix: str, nix_env: dict[str, str], flake: Path
) -> None:
    flake_nix = flake / "flake.nix"
    flake_nix.write_text(flake_nix.read_text().replace(original, broken))
    result = _run(
        [nix, "flake", "check", "--no-build", *_stub_args(flake), f"path:{flake}"],
        nix_env,
        flake,
        check=False,
    )
    assert result.returncode != 0
    for message in messages:
        assert message in result.stderr
