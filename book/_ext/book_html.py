"""Two fixes for the book's HTML, loaded through ``sphinx.local_extensions`` in ``_config.yml``.

Both showed up as console errors on every page of the built book.

1. **MathJax loaded twice** ("Cannot set property Package"). jupyter-book 1.0.4 adds every ``*.js``
   file under the book's static folders to ``html_js_files`` (``jupyter_book/config.py``,
   "Initialize static files"), so the MathJax bundle that ``book/build.py`` vendors under
   ``_static/mathjax`` became a plain ``<script>`` on every page, while ``sphinx.ext.mathjax``
   loads ``mathjax_path`` itself (``defer``, after its configuration script). The bundle is
   removed from ``html_js_files``; ``sphinx.ext.mathjax`` loads it once, on pages with math.

2. **Inline scripts repeated** ("Identifier 'THEBE_JS_URL' has already been declared"). In
   Sphinx 7.4 an inline script added with ``app.add_js_file(None, body=...)`` *after* the HTML
   builder is initialised is stored twice: in the builder as ``_JavaScript(None, ...)`` and in the
   registry, which ``StandaloneHTMLBuilder.prepare_writing`` adds again as ``_JavaScript('', ...)``
   (``None != ''``, so its duplicate check misses it). ``sphinx_thebe`` declares
   ``const THEBE_JS_URL`` that way on ``env-before-read-docs`` (the event fires once; the script
   is listed twice); ``sphinx_togglebutton``'s selector script repeats the same way (harmless,
   ``var``). Each page's script list is de-duplicated after every other extension has added its
   scripts.
"""
from __future__ import annotations

from typing import Any


def _drop_vendored_mathjax(app: Any, config: Any) -> None:
    path = config.mathjax_path
    config.html_js_files = [entry for entry in config.html_js_files
                            if (entry[0] if isinstance(entry, (tuple, list)) else entry) != path]


def _dedupe_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for js in scripts:
        key = (str(getattr(js, "filename", js) or ""), tuple(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    context["script_files"] = kept


def setup(app: Any) -> dict:
    # after sphinx's own config-inited handler (priority 800) turned html_js_files into tuples
    app.connect("config-inited", _drop_vendored_mathjax, priority=900)
    # after the theme, sphinx.ext.mathjax and myst-nb added their per-page scripts
    app.connect("html-page-context", _dedupe_scripts, priority=999)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
