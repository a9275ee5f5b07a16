{
  description = "etcd_env: a real, managed etcd for test sessions, pinned by Nix";

  # nixos-26.05 is the supported stable release (25.11 left support in mid-2026):
  # a release branch only takes fixes, so `nix flake update` never moves etcd
  # off the 3.5 line or Python to a new minor under the tests.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;

      forAllSystems = lib.genAttrs [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];

      # etcd 3.6 removed the v2 API that python-etcd and PyTorch's etcd
      # rendezvous speak, and bare `etcd` is 3.6 in nixpkgs from 25.11 on: pin
      # the 3.5 line by name and refuse at evaluation time if it ever drifts.
      etcdFor =
        pkgs:
        let
          etcd = pkgs.etcd_3_5;
        in
        if lib.versions.majorMinor etcd.version == "3.5" then
          etcd
        else
          throw "etcd_env needs etcd 3.5, the last line with the v2 API; this nixpkgs gives ${etcd.version}";

      etcdEnvFor =
        pkgs:
        let
          etcd = etcdFor pkgs;
          py = pkgs.python3.pkgs;
        in
        py.buildPythonPackage {
          pname = "etcd-env";
          version = "0.1.0";
          pyproject = true;
          src = ./.;

          build-system = [ py.hatchling ];
          dependencies = [
            py.python-etcd
            py.filelock
          ];

          nativeCheckInputs = [
            py.pytestCheckHook
            py.pytest-xdist
            py.nox
            py.trustme
            etcd
          ]
          # setpriv (util-linux) gives etcd its death signal without forking the whole test process.
          ++ lib.optional pkgs.stdenv.hostPlatform.isLinux pkgs.util-linux;
          # torch is not a dependency; `nix develop -c nox -s rendezvous_tests` runs these.
          disabledTestPaths = [ "tests/rendezvous" ];
          # The tests start real etcd servers on loopback; the variables make
          # them use, and verify, the pinned one rather than whatever is on PATH.
          preCheck = ''
            export HOME="$(mktemp -d)"
            export ETCD_ENV_BINARY=${etcd}/bin/etcd
            export ETCD_ENV_EXPECT_VERSION=${etcd.version}
          '';
          # The macOS sandbox forbids even loopback sockets unless asked.
          __darwinAllowLocalNetworking = true;
          pythonImportsCheck = [ "etcd_env" ];

          # `nix run` should work on a machine with no etcd of its own; an
          # explicit ETCD_ENV_BINARY from the caller still wins.
          makeWrapperArgs = [
            "--set-default"
            "ETCD_ENV_BINARY"
            "${etcd}/bin/etcd"
          ];

          meta = {
            description = "A real, managed etcd for test sessions";
            mainProgram = "etcd-env";
          };
        };
    in
    {
      packages = forAllSystems (
        system:
        let
          pkgs = nixpkgs.legacyPackages.${system};
        in
        {
          etcd = etcdFor pkgs;
          default = etcdEnvFor pkgs;
        }
      );

      devShells = forAllSystems (
        system:
        let
          pkgs = nixpkgs.legacyPackages.${system};
          etcd = etcdFor pkgs;
          python = pkgs.python3.withPackages (ps: [
            ps.python-etcd
            ps.filelock
            ps.nox
            ps.pytest
            # What the suite itself uses, so `pytest` runs in the shell as well as `nox -s tests`.
            ps.pytest-xdist
            ps.trustme
          ]);
        in
        {
          default = pkgs.mkShell {
            packages = [
              etcd
              python
            ]
            # setpriv (util-linux) gives etcd its death signal without forking the whole process.
            ++ lib.optional pkgs.stdenv.hostPlatform.isLinux pkgs.util-linux
            ++ [
              # The working tree's CLI, not a store snapshot of it, so edits
              # show up without re-entering the shell.
              (pkgs.writeShellScriptBin "etcd-env" ''exec python -m etcd_env "$@"'')
            ];
            ETCD_ENV_BINARY = "${etcd}/bin/etcd";
            ETCD_ENV_EXPECT_VERSION = etcd.version;
            shellHook = ''
              export PYTHONPATH="$PWD''${PYTHONPATH:+:$PYTHONPATH}"
            '';
          };
        }
      );

      apps = forAllSystems (system: {
        default = {
          type = "app";
          program = "${self.packages.${system}.default}/bin/etcd-env";
          meta.description = "Run etcd-env with the pinned etcd";
        };
      });

      checks = forAllSystems (system: {
        package = self.packages.${system}.default;
        devShell = self.devShells.${system}.default;
      });

      formatter = forAllSystems (system: nixpkgs.legacyPackages.${system}.nixfmt-tree);
    };
}
