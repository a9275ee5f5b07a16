# stdenv's tools, taken from the host: coreutils, findutils, grep, sed, tar,
# gzip, unzip, ps. Deliberately not nix (a nixpkgs build has none on PATH) and
# not the host's etcd (the flake must bring its own).
# Each is looked up as a file, not with `command -v`: /bin/sh answers that with the bare
# name for its builtins (true, false, echo, printf, test, kill), and a link to the bare
# name is a link to itself (exec fails with ELOOP).
set -eu
PATH=/usr/bin:/bin
mkdir -p "$out/bin"
for tool in $tools; do
  for dir in /usr/bin /bin; do
    if [ -x "$dir/$tool" ]; then
      ln -s "$dir/$tool" "$out/bin/$tool"
      break
    fi
  done
done
