# An offline stand-in for nixpkgs, for building and checking etcd_env's flake on
# a machine that cannot reach GitHub or a binary cache. Use it on a copy prepared
# by tests/nix/stand_in.py (README.md: what it models, what only an online run checks):
#
#   nix build -L --override-input nixpkgs path:./tests/nix/nixpkgs-stub .#packages.<system>.default
#
# It provides exactly the attributes ../../../flake.nix uses (plus bashInteractive,
# which `nix develop` looks up in a flake's nixpkgs input). A typo in an attribute
# name fails here as it would against real nixpkgs; nothing here proves that real
# nixpkgs has these packages, builds them, or at which versions.
{
  description = "Offline stand-in for nixpkgs (etcd_env flake tests only)";

  outputs =
    { self }:
    let
      lib = import ./lib.nix;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
    in
    {
      inherit lib;
      legacyPackages = lib.genAttrs systems (system: import ./pkgs.nix { inherit lib system; });
    };
}
