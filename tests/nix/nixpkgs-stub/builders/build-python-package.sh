# buildPythonPackage + pypaBuildHook + pypaInstallHook + pythonImportsCheckHook +
# pytestCheckHook (+ pytest-xdist's setup hook), as nixpkgs 26.05 runs them, in
# the few lines the stand-in needs. Run by /bin/bash with the attributes as
# environment variables (see pkgs.nix).
set -euo pipefail

# nixpkgs: PATH holds only the build's inputs and stdenv's tools (no nix, no
# host etcd); HOME is a directory that does not exist.
export PATH="$inputsPath"
export HOME=/homeless-shelter

site="$out/$sitePackages"
phase() { echo "nixpkgs-stub: $1"; }
runHook() { local hook="${!1:-}"; if [ -n "$hook" ]; then eval "$hook"; fi; }

phase "unpackPhase"
cp -r "$src" source
chmod -R u+w source
cd source

# Dependencies reach Python only through PYTHONPATH (the interpreter has no
# site-packages of its own): each input's site-packages, as nixpkgs' python
# setup hook adds them.
export PYTHONPATH="$buildPythonPath"

phase "buildPhase (pypaBuildHook: the PEP 517 backend, no isolation)"
mkdir -p dist
python - <<'PY'
import importlib, os, sys
# As pypa/build, which pypaBuildHook runs: tomllib from Python 3.11, tomli (a hatchling and pytest requirement there) before.
tomllib = importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "tomli")
backend = tomllib.load(open("pyproject.toml", "rb"))["build-system"]["build-backend"]
print("built", importlib.import_module(backend).build_wheel(os.path.abspath("dist")))
PY

phase "installPhase (pypaInstallHook: the wheel into \$out, its console scripts as pypa's installer writes them)"
mkdir -p "$site" "$out/bin"
python - "$site" "$out/bin" dist/*.whl <<'PY'
import configparser, os, pathlib, sys, zipfile
site, bin_dir, wheel = sys.argv[1:]
zipfile.ZipFile(wheel).extractall(site)
entry_points = configparser.ConfigParser(delimiters="=")
entry_points.optionxform = str
entry_points.read(next(pathlib.Path(site).glob("*.dist-info/entry_points.txt")))
for name, target in entry_points["console_scripts"].items() if "console_scripts" in entry_points else []:
    module, _, func = target.strip().partition(":")
    script = pathlib.Path(bin_dir, name)
    script.write_text(
        f"#!{os.environ['pythonExecutable']}\n"
        "# -*- coding: utf-8 -*-\n"
        "import re\n"
        "import sys\n"
        f"from {module} import {func}\n"
        'if __name__ == "__main__":\n'
        '    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])\n'
        f"    sys.exit({func}())\n"
    )
    script.chmod(0o755)
PY

# wrapPythonPrograms (nixpkgs' pkgs/development/interpreters/python/wrap.sh and
# wrap-python.nix): the script's own text gets its import path (site.addsitedir of
# $out's and every dependency's site-packages, before its first statement), and a
# makeWrapper shell script in its place prefixes PATH, sets PYTHONNOUSERSITE and
# applies makeWrapperArgs. No PYTHONPATH: a child started as `sys.executable -m ...`
# gets a bare interpreter.
phase "wrapPythonPrograms (wrap.sh: sys.path patched into each script; PATH, PYTHONNOUSERSITE in a shell wrapper)"
programPythonPath="$site${dependenciesPythonPath:+:$dependenciesPythonPath}"
programPath="$pythonBin:$out/bin"
for f in "$out"/bin/*; do
  [ -f "$f" ] && [ -x "$f" ] || continue
  name=$(basename "$f")
  wrapped="$out/bin/.$name-wrapped"
  mv "$f" "$wrapped"
  sites="'${programPythonPath//:/\',\'}'"
  preamble="import sys;import site;import functools;sys.argv[0] = '$name';functools.reduce(lambda k, p: site.addsitedir(p, k), [$sites], site._init_pathinfo());"
  # Before the first line that is a statement (not the shebang, a comment or blank), as wrap-python.nix's sed does.
  python - "$wrapped" "$preamble" <<'PY'
import pathlib, re, sys
script, preamble = pathlib.Path(sys.argv[1]), sys.argv[2]
lines = script.read_text().splitlines(keepends=True)
first = next(i for i, line in enumerate(lines) if not re.match(r"^ *(#.*)?$", line))
script.write_text("".join([*lines[:first], preamble + "\n", *lines[first:]]))
PY
  chmod 755 "$wrapped"
  {
    echo '#! /bin/bash -e'
    echo "PATH='$programPath'\${PATH:+':'\$PATH}"
    echo 'export PATH'
    echo "export PYTHONNOUSERSITE='true'"
    printf '%s' "$wrapperLines"
    echo "exec -a \"\$0\" \"$wrapped\"  \"\$@\""
  } > "$f"
  chmod 755 "$f"
  echo "wrapped $f"
done

phase "pythonRuntimeDepsCheckHook (the wheel's requirements met by its dependencies)"
PYTHONPATH="$dependenciesPythonPath:$buildPythonPath" python - dist/*.whl <<'PY'
import sys, zipfile
from email.parser import Parser
from importlib import metadata
from packaging.requirements import Requirement
wheel = zipfile.ZipFile(sys.argv[1])
meta = Parser().parsestr(wheel.read(next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))).decode())
deps = [p for p in __import__("os").environ["dependenciesPythonPath"].split(":") if p]
unmet = []
for line in meta.get_all("Requires-Dist") or []:
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    found = next(iter(metadata.distributions(name=req.name, path=deps)), None)
    if found is None or not req.specifier.contains(found.version, prereleases=True):
        unmet.append(f"{req} (found {found.version if found else 'nothing'})")
if unmet:
    sys.exit("nixpkgs-stub: runtime dependencies not satisfied by `dependencies`: " + "; ".join(unmet))
print("all runtime dependencies satisfied")
PY

phase "pythonImportsCheckPhase"
for module in $pythonImportsCheck; do
  (cd "$TMPDIR" && PYTHONPATH="$site:$dependenciesPythonPath" python -c "import $module; print('imported', $module.__file__)")
done

if [ -z "$doCheck" ]; then exit 0; fi

# pytestCheckHook runs in installCheckPhase, on the installed package and the
# source's tests, with the check inputs on PYTHONPATH and PATH.
phase "installCheckPhase (pytestCheckHook)"
export PYTHONPATH="$site:$checkPythonPath"
runHook preCheck
args=()
# pytest-xdist's setup hook.
if [ -n "$xdist" ]; then args+=("--numprocesses=$NIX_BUILD_CORES"); fi
# disabledTestPaths: --ignore-glob each, and a path that matches nothing is an error.
for path in $disabledTestPaths; do
  if ! compgen -G "$path" >/dev/null; then
    echo "nixpkgs-stub: disabledTestPaths: $path does not exist (nixpkgs 26.05's pytestCheckHook aborts on this)" >&2
    exit 1
  fi
  args+=("--ignore-glob=$path")
done
if [ -n "$disabledTests" ]; then
  args+=(-k "not ($(echo $disabledTests | sed 's/ / or /g'))")
fi
# shellcheck disable=SC2086
echo "nixpkgs-stub: python -m pytest ${args[*]} $pytestFlags"
python -m pytest "${args[@]}" $pytestFlags
runHook postCheck
