# Fake packages with the names and shapes the flake uses. Each builds with
# /bin/sh and the host's coreutils (the tests run Nix with sandbox = false),
# so `nix develop` can realise them offline.
{ lib, system }:
let
  # A derivation from a shell snippet; PATH is the host's, which only works
  # unsandboxed: acceptable for a stand-in, never for a real package.
  stub =
    name: script: extra:
    derivation (
      {
        inherit name system;
        builder = "/bin/sh";
        args = [
          "-c"
          ''
            set -eu
            ${script}
          ''
        ];
        PATH = "/usr/bin:/bin";
      }
      // extra
    );

  # nixpkgs' etcd_3_5 is a symlinkJoin of etcdserver, etcdctl and etcdutl, so
  # $out/bin/etcd is a symlink into another store path; the stand-in keeps
  # that shape so a resolver that follows symlinks is exercised.
  fakeEtcd =
    version:
    let
      server = stub "etcdserver-${version}" ''
        mkdir -p $out/bin
        cat > $out/bin/etcd <<'SCRIPT'
        #!/bin/sh
        # nixpkgs-stub etcd: answers --version like etcd does, serves nothing.
        case "''${1:-}" in
          --version)
            echo "etcd Version: ${version}"
            echo "Git SHA: nixpkgs-stub"
            echo "Go Version: none (stand-in)"
            echo "Go OS/Arch: ${system}"
            exit 0 ;;
        esac
        echo "nixpkgs-stub etcd ${version}: only --version is implemented" >&2
        exit 1
        SCRIPT
        chmod +x $out/bin/etcd
      '' { };
    in
    stub "etcd-${version}" ''
      mkdir -p $out/bin
      ln -s ${server}/bin/etcd $out/bin/etcd
    '' { }
    // {
      inherit version;
    };

  # A stand-in interpreter (see python-wrapper.sh) named like nixpkgs' python3.
  fakePython =
    name: extra:
    stub name ''
      mkdir -p $out/bin
      cp ${./python-wrapper.sh} $out/bin/python3
      chmod +x $out/bin/python3
      ln -s python3 $out/bin/python
    '' extra;

  # Python packages are named, never built: referring to one that nixpkgs
  # lacks (a typo) fails evaluation here as it would there.
  pyPackage =
    pname:
    stub "python3-${pname}-stub" ''
      mkdir -p $out
      echo ${pname} > $out/stub
    '' { }
    // {
      inherit pname;
    };

  names = builtins.map (p: p.name);

  pythonPackages = {
    python-etcd = pyPackage "python-etcd";
    filelock = pyPackage "filelock";
    nox = pyPackage "nox";
    pytest = pyPackage "pytest";
    pytest-xdist = pyPackage "pytest-xdist";
    trustme = pyPackage "trustme";
    hatchling = pyPackage "hatchling";
    pytestCheckHook = pyPackage "pytest-check-hook";

    # Checks what can be checked without building: the attributes nixpkgs'
    # buildPythonPackage needs are present and every listed package exists.
    buildPythonPackage =
      attrs:
      assert attrs ? pname && attrs ? version && attrs ? src;
      assert attrs.pyproject or false;
      builtins.deepSeq
        (map names [
          (attrs.build-system or [ ])
          (attrs.dependencies or [ ])
          (attrs.nativeCheckInputs or [ ])
        ])
        (
          stub "python3-${attrs.pname}-${attrs.version}"
            ''
              mkdir -p $out/nix-support
              echo "nixpkgs-stub: evaluated, not built, by buildPythonPackage" > $out/nix-support/stub
            ''
            {
              inherit (attrs) src;
              preCheck = attrs.preCheck or "";
              disabledTestPaths = attrs.disabledTestPaths or [ ];
              makeWrapperArgs = attrs.makeWrapperArgs or [ ];
              __darwinAllowLocalNetworking = attrs.__darwinAllowLocalNetworking or false;
            }
          // {
            inherit (attrs) pname version;
            meta = attrs.meta or { };
          }
        );
  };

  python3 = fakePython "python3-stub" { } // {
    pkgs = pythonPackages;
    withPackages =
      f:
      let
        chosen = f pythonPackages;
      in
      builtins.deepSeq (names chosen) (
        fakePython "python3-stub-env" { packages = builtins.concatStringsSep " " (names chosen); }
      );
  };
in
{
  etcd_3_5 = fakeEtcd "3.5.26";
  # Bare `etcd` is 3.6 in nixpkgs from 25.11 on: no v2 API.
  etcd = fakeEtcd "3.6.6";

  inherit python3;

  # nixpkgs' mkShell is a derivation `nix develop` can run its get-env script
  # with: Nix 2.8 requires that builder to be bash, and the script writes the
  # environment to each output named in $outputs.
  mkShell =
    {
      packages ? [ ],
      ...
    }@attrs:
    derivation (
      builtins.removeAttrs attrs [ "packages" ]
      // {
        name = attrs.name or "nix-shell";
        inherit system;
        builder = "/bin/bash";
        outputs = [ "out" ];
        args = [
          "-c"
          "echo nixpkgs-stub shell > $out"
        ];
        PATH = lib.makeBinPath packages;
      }
    );

  writeShellScriptBin =
    name: text:
    stub name ''
      mkdir -p $out/bin
      printf '#!/bin/sh\n%s\n' "$text" > $out/bin/${name}
      chmod +x $out/bin/${name}
    '' { inherit text; };

  nixfmt-tree = stub "nixfmt-tree-stub" ''
    mkdir -p $out/bin
    printf '#!/bin/sh\necho "nixpkgs-stub: nixfmt-tree is a stand-in; formatting needs real nixpkgs" >&2\nexit 1\n' > $out/bin/treefmt
    chmod +x $out/bin/treefmt
  '' { };

  # Only the platform test the flake makes.
  stdenv.hostPlatform.isLinux = lib.hasSuffix "-linux" system;

  util-linux = stub "util-linux-stub" ''
    mkdir -p $out/bin
    ln -s /usr/bin/setpriv $out/bin/setpriv
  '' { };

  # `nix develop` asks the flake's nixpkgs input for bashInteractive.
  bashInteractive = stub "bash-interactive-stub" ''
    mkdir -p $out/bin
    ln -s /bin/bash $out/bin/bash
  '' { };
}
