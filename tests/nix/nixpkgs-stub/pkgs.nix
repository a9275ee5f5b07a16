# The packages and builders the flake uses, with nixpkgs' names and the nixpkgs
# behaviours that decide whether etcd_env's suite passes (README.md lists them).
# Everything builds offline, in Nix's sandbox or not, from the host: a Python 3.13 and an
# environment holding nixos-26.05's package versions (host.nix, versions.json), its tools
# (tests/nix/stand_in.py's sandbox_paths: the host directories a sandboxed build must see).
{ lib, system }:
let
  host = import ./host.nix;
  isLinux = lib.hasSuffix "-linux" system;
  inherit (builtins) concatStringsSep filter any;

  # A derivation from a shell snippet, with the host's tools.
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

  # stdenv's tools from the host, without nix and without the host's etcd.
  hostTools = derivation {
    name = "stdenv-host-tools";
    inherit system;
    builder = "/bin/sh";
    args = [ ./builders/host-tools.sh ];
    tools = [
      "sh" "bash" "env" "cat" "cp" "mv" "rm" "ln" "ls" "mkdir" "rmdir" "chmod" "touch"
      "install" "mktemp" "dirname" "basename" "realpath" "readlink" "head" "tail" "tr"
      "cut" "wc" "sort" "uniq" "find" "xargs" "grep" "sed" "awk" "tar" "gzip" "unzip"
      "id" "uname" "true" "false" "test" "printf" "echo" "sleep" "kill" "ps" "pgrep" "date"
      "stat" "tee" "diff" "cmp" "which"
    ];
  };

  # --- Python -------------------------------------------------------------

  pythonVersion = host.pythonVersion;
  sitePackages = "lib/python${pythonVersion}/site-packages";

  # Run builders/python.py with the host's base interpreter; with no host Python
  # (host.nix as committed) the build fails and says how to prepare one.
  pyBuild =
    name: args:
    if host.python == null then
      stub name ''
        echo "nixpkgs-stub: no host Python; prepare a copy of the stand-in with tests/nix/stand_in.py" >&2
        exit 1
      '' { }
    else
      derivation {
        inherit name system;
        builder = host.python;
        # Nix starts a builder without argv[0]'s path: sys.executable would be empty.
        hostPython = host.python;
        args = [ ./builders/python.py ] ++ args;
        hostSitePackages = concatStringsSep ":" host.sitePackages;
      };

  # A Python package: its files (and its requirements', as nixpkgs propagates
  # them) in $out/lib/pythonX.Y/site-packages, which is all a build sees of it.
  # Referring to a package nixpkgs lacks (a typo) fails evaluation, as there.
  pyPackage =
    pname: extra:
    pyBuild "python${pythonVersion}-${pname}" [
      "package"
      pname
    ]
    // {
      inherit pname;
      isStubPythonPackage = true;
    }
    // extra;

  isPy = p: p.isStubPythonPackage or false;
  pythonPath = ps: concatStringsSep ":" (map (p: "${p}/${sitePackages}") (filter isPy ps));

  # makeWrapper's --set-default (set only if unset); any other flag is outside what the stand-in models.
  wrapperLines =
    args:
    if args == [ ] then
      ""
    else if builtins.head args == "--set-default" then
      let
        var = builtins.elemAt args 1;
        value = builtins.elemAt args 2;
      in
      "export ${var}=\${${var}-'${value}'}\n" + wrapperLines (builtins.tail (builtins.tail (builtins.tail args)))
    else
      throw "nixpkgs-stub: makeWrapperArgs ${builtins.head args} is not modelled (only --set-default)";

  buildPythonPackage =
    attrs:
    if attrs ? pytestFlagsArray then
      throw "pytestFlagsArray is no longer accepted by buildPythonPackage in nixpkgs 26.05 (see its release notes): use pytestFlags, and disabledTestPaths for paths"
    else
      assert attrs ? pname && attrs ? version && attrs ? src;
      assert attrs.pyproject or false;
      let
        buildSystem = attrs.build-system or [ ];
        dependencies = attrs.dependencies or [ ];
        checkInputs = attrs.nativeCheckInputs or [ ];
        hasCheckHook = any (p: p.isPytestCheckHook or false) checkInputs;
      in
      derivation {
        name = "python${pythonVersion}-${attrs.pname}-${attrs.version}";
        inherit system;
        inherit (attrs) src;
        builder = "/bin/bash";
        args = [ ./builders/build-python-package.sh ];
        inherit sitePackages;
        pythonInterpreter = "${python3}/bin/python";
        # python.interpreter, what installed scripts' shebangs name, and its bin dir (wrap.sh's PATH prefix).
        pythonExecutable = "${python3}/bin/python${pythonVersion}";
        pythonBin = "${python3}/bin";
        # PATH: the interpreter, the non-Python inputs' bin dirs, stdenv's tools.
        inputsPath = lib.makeBinPath (
          [ python3 ] ++ filter (p: !isPy p) (buildSystem ++ dependencies ++ checkInputs) ++ [ hostTools ]
        );
        buildPythonPath = pythonPath (buildSystem ++ dependencies);
        dependenciesPythonPath = pythonPath dependencies;
        checkPythonPath = pythonPath (buildSystem ++ dependencies ++ checkInputs);
        wrapperLines = wrapperLines (attrs.makeWrapperArgs or [ ]);
        doCheck = hasCheckHook && (attrs.doCheck or true);
        xdist = any (p: p.isXdist or false) checkInputs;
        disabledTestPaths = attrs.disabledTestPaths or [ ];
        disabledTests = attrs.disabledTests or [ ];
        pytestFlags = attrs.pytestFlags or [ ];
        pythonImportsCheck = attrs.pythonImportsCheck or [ ];
        preCheck = attrs.preCheck or "";
        postCheck = attrs.postCheck or "";
        __darwinAllowLocalNetworking = attrs.__darwinAllowLocalNetworking or false;
      }
      // {
        inherit (attrs) pname version;
        meta = attrs.meta or { };
      };

  pythonPackages = {
    python-etcd = pyPackage "python-etcd" { };
    filelock = pyPackage "filelock" { };
    nox = pyPackage "nox" { };
    pytest = pyPackage "pytest" { };
    pytest-xdist = pyPackage "pytest-xdist" { isXdist = true; };
    trustme = pyPackage "trustme" { };
    hatchling = pyPackage "hatchling" { };
    pytestCheckHook = pyPackage "pytest-check-hook" { isPytestCheckHook = true; };
    inherit buildPythonPackage;
  };

  # A bare interpreter: no site-packages of its own, so sys.executable run by a
  # child finds nothing the parent did not pass on through PYTHONPATH.
  python3 =
    pyBuild "python3-${pythonVersion}" [ "interpreter" ]
    // {
      inherit pythonVersion sitePackages;
      pkgs = pythonPackages;
      # python.withPackages: an interpreter whose own site-packages holds the
      # chosen packages, with their console scripts (pytest, nox) beside it.
      withPackages =
        f:
        pyBuild "python3-${pythonVersion}-env" ([ "env" ] ++ map (p: p.pname) (f pythonPackages));
    };

  # --- the rest of what the flake uses -----------------------------------

  # fetchurl as a fixed-output derivation: Nix itself checks the hash. The URL
  # is served from ./mirror by its file name (tests/nix/stand_in.py fills it).
  fetchurl =
    {
      url,
      sha256,
    }:
    let
      name = baseNameOf url;
    in
    derivation {
      inherit name system url;
      builder = "/bin/sh";
      args = [
        "-c"
        ''
          if [ ! -e "$mirror/$name" ]; then
            echo "nixpkgs-stub: fetchurl: $url is not in the stand-in's mirror; prepare it with tests/nix/stand_in.py" >&2
            exit 1
          fi
          /bin/cp "$mirror/$name" "$out"
        ''
      ];
      mirror = ./mirror;
      outputHashMode = "flat";
      outputHashAlgo = "sha256";
      outputHash = sha256;
    };

  stdenvNoCC.mkDerivation =
    attrs:
    derivation {
      name = "${attrs.pname}-${attrs.version}";
      inherit system;
      inherit (attrs) src installPhase;
      builder = "/bin/bash";
      args = [ ./builders/generic.sh ];
      inputsPath = lib.makeBinPath ((attrs.nativeBuildInputs or [ ]) ++ [ hostTools ]);
      doInstallCheck = attrs.doInstallCheck or false;
      installCheckPhase = attrs.installCheckPhase or "";
      dontStrip = attrs.dontStrip or false;
      dontPatchELF = attrs.dontPatchELF or false;
    }
    // {
      inherit (attrs) pname version;
      meta = attrs.meta or { };
    };
in
{
  inherit python3 fetchurl stdenvNoCC;

  # nixpkgs' etcd_3_5, which the flake falls back to only on a platform whose archive hash
  # the table lacks: evaluated, never built here (only `version` is read), and the version
  # of nixos-26.05 at branch-off. Bare `etcd` (3.6 from 25.11 on) is not used at all.
  etcd_3_5 = stub "etcd-3.5.26-stub" "exit 1" { } // {
    version = "3.5.26";
  };

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

  stdenv = {
    hostPlatform = {
      inherit isLinux system;
    };
    # gcc's runtime libraries (libstdc++), which a pip-installed torch wheel needs.
    cc.cc.lib = stub "gcc-lib-stub" ''
      mkdir -p $out/lib
      for f in /usr/lib/*/libstdc++.so.6 /usr/lib64/libstdc++.so.6 /usr/lib/libstdc++.so.6; do
        if [ -e "$f" ]; then ln -sf "$f" $out/lib/; fi
      done
    '' { };
  };

  # The two util-linux programs the suite runs (nixpkgs' util-linux has both).
  util-linux = stub "util-linux-stub" ''
    mkdir -p $out/bin
    ln -s /usr/bin/setpriv $out/bin/setpriv
    ln -s /usr/bin/setsid $out/bin/setsid
  '' { };

  unzip = stub "unzip-stub" ''
    mkdir -p $out/bin
    ln -s /usr/bin/unzip $out/bin/unzip
  '' { };

  # `nix develop` asks the flake's nixpkgs input for bashInteractive.
  bashInteractive = stub "bash-interactive-stub" ''
    mkdir -p $out/bin
    ln -s /bin/bash $out/bin/bash
  '' { };
}
