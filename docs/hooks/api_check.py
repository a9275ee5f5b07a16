"""mkdocs hook: every public name of etcd_env has an entry in the API reference.

A name in ``etcd_env.__all__`` with no ``::: etcd_env.NAME`` block (mkdocstrings renders its
docstring there) is a warning, which ``mkdocs build --strict`` turns into a failed build; so is
a block for a name that is not public. ``__all__`` is read from the source, not imported.
"""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

from jinja2 import Environment
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

log = logging.getLogger("mkdocs.hooks.api_check")

ENTRY = re.compile(r"^::: etcd_env\.(\w+)\s*$", re.MULTILINE)

_documented: dict[str, str] = {}


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    _documented.clear()
    return config


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    for name in ENTRY.findall(markdown):
        _documented[name] = page.file.src_uri
    return markdown


def on_env(env: Environment, config: MkDocsConfig, files: Files) -> Environment:
    public = public_names(Path(config.config_file_path).resolve().parent)
    missing = [name for name in public if name not in _documented]
    if missing:
        log.warning("public names with no API entry (add '::: etcd_env.NAME' to docs/api.md): %s", ", ".join(missing))
    for name in sorted(set(_documented) - set(public)):
        log.warning("%s documents etcd_env.%s, which is not in etcd_env.__all__", _documented[name], name)
    return env


def public_names(root: Path) -> list[str]:
    tree = ast.parse((root / "etcd_env" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise LookupError("etcd_env/__init__.py has no __all__")
