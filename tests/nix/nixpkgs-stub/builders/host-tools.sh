# stdenv's tools, taken from the host: coreutils, findutils, grep, sed, tar,
# gzip, unzip, ps. Deliberately not nix (a nixpkgs build has none on PATH) and
# not the host's etcd (the flake must bring its own).
set -eu
PATH=/usr/bin:/bin
mkdir -p "$out/bin"
for tool in $tools; do
  found=$(command -v "$tool" || true)
  if [ -n "$found" ]; then ln -s "$found" "$out/bin/$tool"; fi
done
