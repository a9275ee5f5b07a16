{
  description = "etcd_env: a real, managed etcd for test sessions, pinned by Nix";

  # nixos-26.05 is the supported stable release (25.11 left support in mid-2026):
  # a release branch only takes fixes, so `nix flake update` never moves Python
  # to a new minor under the tests. etcd does not come from nixpkgs at all (below).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;

      # Official release archives are named by Go's os-arch.
      platforms = {
        x86_64-linux = "linux-amd64";
        aarch64-linux = "linux-arm64";
        x86_64-darwin = "darwin-amd64";
        aarch64-darwin = "darwin-arm64";
      };
      forAllSystems = lib.genAttrs (builtins.attrNames platforms);

      # One line per file, without relying on how a regex `.` treats newlines
      # (Nix's std::regex differs between libstdc++ and libc++).
      lines = file: builtins.filter builtins.isString (builtins.split "\n" (builtins.readFile file));
      firstMatch =
        file: regex: what:
        let
          found = builtins.filter (m: m != null) (map (builtins.match regex) (lines file));
        in
        if found == [ ] then throw "etcd_env: ${what} not found in ${toString file}" else builtins.head (builtins.head found);

      # The one version number, in the one place pyproject.toml (hatch) reads it too.
      version = firstMatch ./etcd_env/_version.py ''__version__ = "([^"]+)"'' "__version__ = \"X.Y.Z\"";

      # The exact etcd every way in uses (etcd-env install, CI, this flake), and
      # the SHA-256 of each official release archive of it.
      etcdVersion = firstMatch ./etcd_env/_binary/ETCD_VERSION "[[:space:]]*([0-9]+\\.[0-9]+\\.[0-9]+)[[:space:]]*" "an etcd version X.Y.Z";
      checksums = (builtins.fromJSON (builtins.readFile ./etcd_env/_binary/etcd_checksums.json)).sha256;

      # The pinned etcd itself, from etcd's official release archive: nixpkgs'
      # etcd_3_5 moves with the branch and its exact version at the locked rev
      # cannot be checked offline; this is one exact binary on every way in.
      # etcd 3.6 removed the v2 API that python-etcd and PyTorch's etcd rendezvous
      # speak, so anything off the 3.5 line is refused at evaluation time.
      # One official release archive of etcd `v`, installed as released, checked against `sha256`.
      releaseEtcd =
        system: pkgs: v: sha256:
        let
          platform = platforms.${system};
          isDarwin = lib.hasSuffix "-darwin" system;
          archive = "etcd-v${v}-${platform}.${if isDarwin then "zip" else "tar.gz"}";
          # etcdutl came with 3.5; a 3.4 archive holds etcd and etcdctl.
          binaries = "etcd etcdctl" + lib.optionalString (lib.versions.majorMinor v != "3.4") " etcdutl";
        in
        pkgs.stdenvNoCC.mkDerivation {
          pname = "etcd";
          version = v;
          src = pkgs.fetchurl {
            url = "https://github.com/etcd-io/etcd/releases/download/v${v}/${archive}";
            inherit sha256;
          };
          nativeBuildInputs = lib.optional isDarwin pkgs.unzip;
          # The official binaries are static Go executables: installed as released.
          dontConfigure = true;
          dontBuild = true;
          dontStrip = true;
          dontPatchELF = true;
          installPhase = ''
            runHook preInstall
            install -Dm755 -t $out/bin ${binaries}
            runHook postInstall
          '';
          # The archive is what its name says: etcd reports that version.
          doInstallCheck = true;
          installCheckPhase = ''
            runHook preInstallCheck
            $out/bin/etcd --version | grep -Fx "etcd Version: ${v}"
            runHook postInstallCheck
          '';
          meta = {
            description = "etcd ${v}, the official release binaries";
            homepage = "https://github.com/etcd-io/etcd";
            license = lib.licenses.asl20;
            sourceProvenance = [ lib.sourceTypes.binaryNativeCode ];
            platforms = [ system ];
            mainProgram = "etcd";
          };
        };

      # The pinned etcd itself, from etcd's official release archive: nixpkgs'
      # etcd_3_5 moves with the branch and its exact version at the locked rev
      # cannot be checked offline; this is one exact binary on every way in.
      # etcd 3.6 removed the v2 API that python-etcd and PyTorch's etcd rendezvous
      # speak, so anything off the 3.5 line is refused at evaluation time.
      etcdFor =
        system: pkgs:
        let
          platform = platforms.${system};
          sha256 = (checksums.${etcdVersion} or { }).${platform} or "";
        in
        if lib.versions.majorMinor etcdVersion != "3.5" then
          throw "etcd_env needs etcd 3.5, the last line with the v2 API; etcd_env/_binary/ETCD_VERSION pins ${etcdVersion}"
        else if sha256 == "" then
          # No public table has every platform's hash of every release (in 2026-12 none has
          # darwin's for 3.5.7 and later): rather than no etcd at all there, nixpkgs' own 3.5
          # build, said loudly. The shell's ETCD_ENV_EXPECT_VERSION is its version, so a
          # test run still proves which etcd it ran.
          let
            fromNixpkgs = pkgs.etcd_3_5;
          in
          if lib.versions.majorMinor fromNixpkgs.version == "3.5" then
            lib.warn (
              "etcd_env/_binary/etcd_checksums.json has no sha256 for etcd ${etcdVersion} on ${platform}, so this "
              + "system gets nixpkgs' etcd_3_5 (${fromNixpkgs.version}), not the pin. For the exact pin, add "
              + "the hash from https://github.com/etcd-io/etcd/releases/download/v${etcdVersion}/SHA256SUMS"
            ) fromNixpkgs
          else
            throw "etcd_env/_binary/etcd_checksums.json has no sha256 for etcd ${etcdVersion} on ${platform}, and nixpkgs' etcd_3_5 is ${fromNixpkgs.version}, off the 3.5 line: add the hash from https://github.com/etcd-io/etcd/releases/download/v${etcdVersion}/SHA256SUMS"
        else
          releaseEtcd system pkgs etcdVersion sha256;

      # The newest version of `line` the table has this platform's hash for, or null. The 3.4
      # line is the one torch's v1 etcd rendezvous keeps its directory lease on (every 3.5
      # refuses to refresh a directory's TTL, etcd #13589); nixpkgs' etcd_3_4 left master in
      # 2026-07, so it comes from the same official archives and table as the pin.
      newestOnLine =
        line: platform:
        let
          listed = builtins.filter (v: lib.versions.majorMinor v == line && checksums.${v} ? ${platform}) (
            builtins.attrNames checksums
          );
          newest = builtins.sort (a: b: builtins.compareVersions a b > 0) listed;
        in
        if listed == [ ] then null else builtins.head newest;

      etcdEnvFor =
        system: pkgs:
        let
          etcd = etcdFor system pkgs;
          py = pkgs.python3.pkgs;
        in
        py.buildPythonPackage {
          pname = "etcd-env";
          inherit version;
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
          # The suite runs on, and verifies, the pinned etcd (its conftest fails the
          # session at once if the two disagree). It needs no HOME of its own.
          preCheck = ''
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
            license = lib.licenses.asl20;
            mainProgram = "etcd-env";
          };
        };
    in
    {
      packages = forAllSystems (
        system:
        let
          pkgs = nixpkgs.legacyPackages.${system};
          etcd34 = newestOnLine "3.4" platforms.${system};
        in
        {
          etcd = etcdFor system pkgs;
          default = etcdEnvFor system pkgs;
        }
        # `nix build .#etcd_3_4`, then ETCD_ENV_BINARY=result/bin/etcd: where the table has a hash.
        // (
          if etcd34 == null then
            { }
          else
            { etcd_3_4 = releaseEtcd system pkgs etcd34 checksums.${etcd34}.${platforms.${system}}; }
        )
      );

      devShells = forAllSystems (
        system:
        let
          pkgs = nixpkgs.legacyPackages.${system};
          etcd = etcdFor system pkgs;
          isLinux = pkgs.stdenv.hostPlatform.isLinux;
          python = pkgs.python3.withPackages (ps: [
            ps.python-etcd
            ps.filelock
            ps.nox
            ps.pytest
            # What the suite itself uses, so `pytest` runs in the shell as well as `nox -s tests`
            # (hatchling: tests/test_flake.py builds the package against the nixpkgs stand-in).
            ps.pytest-xdist
            ps.trustme
            ps.hatchling
          ]);
        in
        {
          default = pkgs.mkShell {
            packages = [
              etcd
              python
            ]
            # setpriv (util-linux) gives etcd its death signal without forking the whole process.
            ++ lib.optional isLinux pkgs.util-linux
            ++ [
              # The working tree's CLI, not a store snapshot of it, so edits
              # show up without re-entering the shell.
              (pkgs.writeShellScriptBin "etcd-env" ''exec python -m etcd_env "$@"'')
            ];
            ETCD_ENV_BINARY = "${etcd}/bin/etcd";
            ETCD_ENV_EXPECT_VERSION = etcd.version;
            # etcd_env comes from the working tree, never from an install. On Linux,
            # the torch wheel nox installs for rendezvous_tests (a manylinux binary)
            # needs libstdc++, which Nix's Python does not put on the loader's path.
            shellHook = ''
              export PYTHONPATH="$PWD''${PYTHONPATH:+:$PYTHONPATH}"
            ''
            + lib.optionalString isLinux ''
              export LD_LIBRARY_PATH="${lib.makeLibraryPath [ pkgs.stdenv.cc.cc.lib ]}''${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
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
        etcd = self.packages.${system}.etcd;
        devShell = self.devShells.${system}.default;
      });

      formatter = forAllSystems (system: nixpkgs.legacyPackages.${system}.nixfmt-tree);
    };
}
