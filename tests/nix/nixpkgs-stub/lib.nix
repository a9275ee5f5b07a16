# The few nixpkgs.lib functions the flake uses, with nixpkgs' semantics.
rec {
  genAttrs = names: f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) names);

  versions = {
    majorMinor =
      v:
      let
        parts = builtins.splitVersion v;
      in
      "${builtins.elemAt parts 0}.${builtins.elemAt parts 1}";
  };

  makeBinPath = paths: builtins.concatStringsSep ":" (map (p: "${p}/bin") paths);
}
