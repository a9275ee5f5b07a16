"""A Python child process that imports what this process imports, however this process got it.

``python -m etcd_env`` finds etcd_env only where the child's own start-up puts it on
``sys.path``: in a venv or with ``PYTHONPATH``, yes; under nixpkgs' console-script wrapper
(``pkgs/development/interpreters/python/wrap.sh``), no. That wrapper adds the package's and
its dependencies' site-packages with ``site.addsitedir`` inside the script's own text and
sets no ``PYTHONPATH``, so ``sys.executable`` alone is a bare interpreter. The child is
therefore handed this process's ``sys.path`` explicitly, ahead of what its own start-up found.
"""

from __future__ import annotations

import json
import sys

# Run as ``python -c BOOTSTRAP PATH_JSON MODULE ARG...``; then the module runs as ``-m`` runs it.
_BOOTSTRAP = (
    "import json, runpy, sys; "
    "inherited = json.loads(sys.argv[1]); "
    "sys.path[:] = inherited + [entry for entry in sys.path if entry not in inherited]; "
    "module = sys.argv[2]; "
    "del sys.argv[1:3]; "
    "runpy.run_module(module, run_name='__main__', alter_sys=True)"
)


def module_command(module: str, *args: str) -> list[str]:
    """argv that runs ``python -m module args`` with this interpreter and this process's import path."""
    return [sys.executable, "-c", _BOOTSTRAP, json.dumps(sys.path), module, *args]
