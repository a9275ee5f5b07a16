#!/bin/sh
# nixpkgs-stub-python: the stand-in cannot build CPython, so its interpreter is
# the first python3 on PATH that is not itself a stand-in. It proves wiring
# (which interpreter the shell puts first, which variables it exports), not
# that nixpkgs' python3 has python-etcd, filelock, nox and pytest.
IFS=:
for d in $PATH; do
    [ -x "$d/python3" ] || continue
    grep -q nixpkgs-stub-python "$d/python3" 2>/dev/null && continue
    unset IFS
    exec "$d/python3" "$@"
done
echo "nixpkgs-stub: no host python3 on PATH to stand in for nixpkgs' python3" >&2
exit 127
