"""mkdocs hook: a 404 page that works wherever the site is served.

mkdocs renders 404.html with absolute links under ``site_url``'s path ("/" when unset), because
the page is shown at any missing URL, at any depth. So the page breaks as soon as the site is
served anywhere else: another repository name, a custom domain, a local ``python -m http.server``.
Here its links become relative, and a script at the top of ``<head>`` finds the site's root before
anything loads: the deepest directory of the requested path that has a ``404.html`` of its own
(asked synchronously, since ``<base>`` must exist before the first stylesheet), then writes a
``<base>`` pointing there and gives Material's configuration the same root.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from mkdocs.config.defaults import MkDocsConfig

# Runs before any stylesheet or script of the page is requested.
FIND_ROOT = """<script>(function () {
  var parts = location.pathname.split("/").slice(0, -1), root = "/";
  for (var i = parts.length; i > 0; i--) {
    var dir = parts.slice(0, i).join("/") + "/", probe = new XMLHttpRequest();
    try { probe.open("HEAD", dir + "404.html", false); probe.send(); } catch (e) { continue; }
    if (probe.status === 200) { root = dir; break; }
  }
  window.__etcd_env_root = location.origin + root;
  document.write('<base href="' + window.__etcd_env_root + '">');
})();</script>"""

# Material resolves its base against location, not <base>: give it the root found above.
FIX_CONFIG = """<script>(function () {
  var node = document.getElementById("__config"), config = JSON.parse(node.textContent);
  config.base = window.__etcd_env_root;
  config.search = window.__etcd_env_root + config.search;
  node.textContent = JSON.stringify(config);
})();</script>"""


def on_post_template(output: str, template_name: str, config: MkDocsConfig) -> str:
    if template_name != "404.html":
        return output
    base = urlsplit(config.site_url or "/").path
    if not base.endswith("/"):
        base += "/"
    output = re.sub(rf'\b(href|src)="{re.escape(base)}', r'\1="', output)
    output = re.sub(rf'("(?:base|search)": "){re.escape(base)}', r"\1", output)
    output = output.replace("<head>", "<head>" + FIND_ROOT, 1)
    config_end = output.index("</script>", output.index('<script id="__config"')) + len("</script>")
    return output[:config_end] + FIX_CONFIG + output[config_end:]
