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

  optional = cond: elem: if cond then [ elem ] else [ ];

  hasSuffix =
    suffix: content:
    let
      lenContent = builtins.stringLength content;
      lenSuffix = builtins.stringLength suffix;
    in
    lenContent >= lenSuffix && builtins.substring (lenContent - lenSuffix) lenSuffix content == suffix;

  makeBinPath = paths: builtins.concatStringsSep ":" (map (p: "${p}/bin") paths);
}
