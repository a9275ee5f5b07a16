# An offline stand-in for nixpkgs, for checking etcd_env's flake wiring on a
# machine that cannot reach GitHub or a binary cache:
#
#   nix flake check --no-build --override-input nixpkgs path:tests/nix/nixpkgs-stub
#
# It provides exactly the attributes ../../../flake.nix uses (plus
# bashInteractive, which `nix develop` looks up in a flake's nixpkgs input), with
# small fake packages that build from /bin/sh in seconds. A typo in an attribute
# name fails here as it would against real nixpkgs; nothing here proves that
# real nixpkgs has these packages, builds them, or at which versions.
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
