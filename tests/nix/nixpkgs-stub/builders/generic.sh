# stdenv.mkDerivation's phases, as far as the flake's etcd derivation uses them:
# unpack the source archive (one top-level directory, entered as stdenv does),
# then installPhase and, with doInstallCheck, installCheckPhase.
set -euo pipefail
export PATH="$inputsPath"
export HOME=/homeless-shelter
runHook() { local hook="${!1:-}"; if [ -n "$hook" ]; then eval "$hook"; fi; }

mkdir unpack
cd unpack
case "$src" in
  *.tar.gz) tar -xzf "$src" ;;
  *.zip) unzip -q "$src" ;;
  *) echo "nixpkgs-stub: cannot unpack $src" >&2; exit 1 ;;
esac
dirs=(*)
if [ "${#dirs[@]}" -ne 1 ] || [ ! -d "${dirs[0]}" ]; then
  echo "nixpkgs-stub: unpacker produced ${dirs[*]}, not one directory (stdenv would need sourceRoot)" >&2
  exit 1
fi
cd "${dirs[0]}"
eval "$installPhase"
if [ -n "${doInstallCheck:-}" ]; then eval "$installCheckPhase"; fi
