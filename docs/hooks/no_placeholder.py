"""mkdocs hook: no page a reader sees names a placeholder account (``OWNER``).

Until the repository is published its URLs are not known; the site then leaves them out
(mkdocs.yml) instead of printing a stand-in. A page that still shows ``OWNER`` (in text, a link
or a canonical tag) is a warning, which ``mkdocs build --strict`` turns into a failed build.
"""

from __future__ import annotations

import logging
import re

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.pages import Page

log = logging.getLogger("mkdocs.hooks.no_placeholder")

PLACEHOLDER = re.compile(r"\bOWNER\b")


def on_post_page(output: str, page: Page, config: MkDocsConfig) -> str:
    if PLACEHOLDER.search(output):
        log.warning("%s shows the placeholder OWNER: name no account until it is published", page.file.src_uri)
    return output
