"""mkdocs hook: every figure in the docs is read from a committed result file at build time.

A page writes ``{{ figure("latest", "start.etcd_env.median_ms") }}``; the hook replaces it with that
value from ``benchmarks/results/latest.json`` (the first argument is the file's stem, the second a
dotted path into it, or a list of keys when a key holds a dot). Optional keywords: ``fmt`` (a format
spec, default ``.1f`` for floats), ``scale`` (a factor applied first, e.g. bytes to MiB) and
``count=True`` (the length of a list).
``{{ include("CHANGELOG.md") }}`` inserts a file of the repository (its ``docs/`` links made
relative to the site). ``{{ source_url() }}`` is where to install etcd_env from before it is on
PyPI: ``git+`` the repository's URL (mkdocs.yml's ``repo_url``, the one place it is configured),
else this checkout's own path, so a command on a page is never a placeholder.
``{{ compatibility() }}`` is the table docs/hooks/compat.py builds from the code's own constants,
and fails the build when they disagree. A missing file or key is a
warning, which ``mkdocs build --strict`` turns into a failed build: no figure can silently go stale
or vanish. The build also checks that README.md names the pin of ``etcd_env/_binary/ETCD_VERSION``.
Write ``\\{{`` for a literal ``{{``.

The hook parses each placeholder with :mod:`ast` and accepts only these calls with literal
arguments: nothing in a page is executed.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from pathlib import Path
from typing import Any

import compat  # docs/hooks/compat.py: mkdocs puts a hook's own directory on sys.path while loading it
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

log = logging.getLogger("mkdocs.hooks.figures")

# Only these two calls: other {{ ... }} (a workflow's ${{ matrix.os }}) are left alone.
PLACEHOLDER = re.compile(r"(\\?)\{\{\s*((?:figure|include|source_url|compatibility)\(.*?\))\s*\}\}", re.DOTALL)

#: Images the pages show, copied from where the benchmark writes them into the site.
IMAGES = {"assets/start_latency.png": "benchmarks/results/start_latency.png"}

_root = Path.cwd()
_repo_url: str | None = None
_cache: dict[str, Any] = {}


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    global _root, _repo_url  # noqa: PLW0603 - mkdocs hooks are module functions; both are per build
    _root = Path(config.config_file_path).resolve().parent
    _repo_url = config.repo_url
    if not _repo_url:
        # A local build names no repository (mkdocs.yml); "edit this page" links have nowhere to point.
        config.edit_uri = None
    _cache.clear()
    # The README cannot read the pin at build time, so it names it; keep the two in step.
    pin = (_root / "etcd_env" / "_binary" / "ETCD_VERSION").read_text(encoding="utf-8").strip()
    if f"**{pin}**" not in (_root / "README.md").read_text(encoding="utf-8"):
        log.warning("README.md does not name the pinned etcd **%s** (etcd_env/_binary/ETCD_VERSION)", pin)
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    for dest, source in IMAGES.items():
        files.append(File.generated(config, dest, abs_src_path=str(_root / source)))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            return match.group(0)[1:]
        try:
            return _evaluate(match.group(2))
        except LookupError as error:
            log.warning("%s: %s", page.file.src_uri, error)
            return f"**[missing: {match.group(2)}]**"

    return PLACEHOLDER.sub(replace, markdown)


def _evaluate(expression: str) -> str:
    try:
        call = ast.parse(expression, mode="eval").body
    except SyntaxError as error:
        raise LookupError(f"not a placeholder: {{{{ {expression} }}}}") from error
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
        raise LookupError(f"not a call: {{{{ {expression} }}}}")
    try:
        args = [ast.literal_eval(a) for a in call.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
    except ValueError as error:
        raise LookupError(f"arguments must be literals: {{{{ {expression} }}}}") from error
    if call.func.id == "figure":
        return figure(*args, **kwargs)
    if call.func.id == "include":
        return include(*args, **kwargs)
    if call.func.id == "source_url":
        return source_url(*args, **kwargs)
    if call.func.id == "compatibility":
        return compat.table(_root, *args, **kwargs)
    raise LookupError(f"unknown placeholder {call.func.id!r}: {{{{ {expression} }}}}")


def figure(
    stem: str, key: str | list[str], fmt: str | None = None, scale: float | None = None, count: bool = False
) -> str:
    data = _results(stem)
    parts = key.split(".") if isinstance(key, str) else list(key)
    value: Any = data
    for i, part in enumerate(parts):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            where = ".".join(parts[:i]) or "the top level"
            raise LookupError(f"benchmarks/results/{stem}.json has no {part!r} under {where}")
    if count:
        value = len(value)
    if scale is not None:
        value = value * scale
    if fmt is not None:
        return format(value, fmt)
    if isinstance(value, float):
        return format(value, ".1f")
    return str(value)


def include(path: str) -> str:
    file = _root / path
    if not file.is_file():
        raise LookupError(f"no file {path} in the repository")
    # rstrip: a one-line file (etcd_env/_binary/ETCD_VERSION) can sit inside a sentence.
    text = file.read_text(encoding="utf-8").rstrip()
    # A repository file links to pages as docs/x.md (right on GitHub); on the site they are x.md.
    return re.sub(r"\]\(docs/", "](", text) if file.suffix == ".md" else text


def source_url() -> str:
    """A pip direct reference to etcd_env's source: the repository if configured, else this checkout."""
    if _repo_url:
        return f"git+{_repo_url.rstrip('/')}"
    return _root.as_uri()


def _results(stem: str) -> Any:
    if stem not in _cache:
        path = _root / "benchmarks" / "results" / f"{stem}.json"
        if not path.is_file():
            raise LookupError(f"no result file benchmarks/results/{stem}.json")
        _cache[stem] = json.loads(path.read_text(encoding="utf-8"))
    return _cache[stem]
