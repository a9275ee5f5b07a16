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

  # As nixpkgs' lib.warn: the message on stderr at evaluation, the value unchanged.
  warn = msg: builtins.trace "evaluation warning: ${msg}";

  optional = cond: elem: if cond then [ elem ] else [ ];
  optionalString = cond: s: if cond then s else "";

  hasSuffix =
    suffix: content:
    let
      lenContent = builtins.stringLength content;
      lenSuffix = builtins.stringLength suffix;
    in
    lenContent >= lenSuffix && builtins.substring (lenContent - lenSuffix) lenSuffix content == suffix;

  makeBinPath = paths: builtins.concatStringsSep ":" (map (p: "${p}/bin") paths);
  makeLibraryPath = paths: builtins.concatStringsSep ":" (map (p: "${p}/lib") paths);

  # Only the names the flake's meta uses: a misspelt one fails here as in nixpkgs.
  licenses.asl20 = {
    spdxId = "Apache-2.0";
    fullName = "Apache License 2.0";
  };
  sourceTypes.binaryNativeCode = {
    shortName = "binaryNativeCode";
    isSource = false;
  };
}
