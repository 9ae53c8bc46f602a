"""Look at every page of a built book in headless Chromium, the way a reader at 1400 px would.

    python book/check_pages.py _build/site/_build/html --out _build/page-check

A developer tool (``make test`` does not run it). It installs nothing: it needs a Chromium binary
(Debian: ``apt-get install -y chromium``; or pass ``--chromium``) and the standard library only. The
browser is driven through the DevTools protocol over ``--remote-debugging-pipe`` (NUL-separated
JSON on file descriptors 3 and 4), so no websocket client is needed. Every page is opened in a
fresh browser context (no cache, cookies or storage from the page before) at ``--width`` × ``--fold``
CSS pixels, and the tool records:

* a full-page screenshot, ``<out>/<page path with / as __>.png``;
* console errors and warnings (``console.error/warn``, uncaught exceptions, and browser log entries
  such as files that failed to load);
* horizontal overflow: the document wider than the window, any table, figure, image, SVG, canvas,
  iframe or display equation wider than the article's content column (also when it sits in a
  scrolling wrapper: the reader still has to scroll it), and any other element that sticks out of
  the column without a scrolling wrapper. Code blocks that scroll sideways are listed as
  ``wide code`` but are not counted as overflow;
* where the first result is: the first table or image in a notebook cell output, and whether its
  top is within the first ``--fold`` pixels (above the fold). Pages without outputs show ``-``.

One line per page, then a summary. The exit status is 1 when any page has a console error or
overflow, 0 otherwise (warnings and results below the fold are reported, not counted).
"""
from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MEASURE_JS = r"""
(() => {
  const px = v => parseFloat(v) || 0;
  const visible = el => {
    const s = getComputedStyle(el), r = el.getBoundingClientRect();
    return s.display !== 'none' && s.visibility !== 'hidden' && r.width > 0 && r.height > 0;
  };
  const describe = el => {
    let d = el.tagName.toLowerCase();
    if (el.id) d += '#' + el.id;
    const cls = [...el.classList].slice(0, 2).join('.');
    if (cls) d += '.' + cls;
    const sec = el.closest('section[id]');
    return sec ? d + ' in #' + sec.id : d;
  };
  const out = {window: innerWidth, scrollWidth: document.documentElement.scrollWidth,
               column: null, overflow: [], wideCode: [], firstResult: null};
  const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const ar = article.getBoundingClientRect(), as = getComputedStyle(article);
  const left = ar.left + px(as.paddingLeft), right = ar.right - px(as.paddingRight);
  out.column = Math.round(right - left);
  const wideKinds = 'table, img, svg, canvas, iframe, video, figure, mjx-container[display="true"]';
  const seen = new Set();
  for (const el of article.querySelectorAll(wideKinds)) {
    if (!visible(el) || el.closest('svg') && el.tagName.toLowerCase() !== 'svg') continue;
    if (el.parentElement && el.parentElement.closest(wideKinds)) continue;  // report the outermost
    const w = Math.max(el.getBoundingClientRect().width, el.scrollWidth);
    if (w > right - left + 1) {
      out.overflow.push({what: describe(el), width: Math.round(w)});
      seen.add(el);
    }
  }
  // anything else that sticks out of the column without a scrolling (or clipping) ancestor
  const clipped = el => {
    for (let a = el.parentElement; a && a !== article; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== 'visible') return true;
    }
    return false;
  };
  const sticking = [];
  for (const el of article.querySelectorAll('*')) {
    if (!visible(el)) continue;
    const r = el.getBoundingClientRect();
    if ((r.right > right + 1 || r.left < left - 1) && !clipped(el)) sticking.push(el);
  }
  for (const el of sticking) {
    if (sticking.some(o => o !== el && o.contains(el))) continue;
    if ([...seen].some(o => o.contains(el) || el.contains(o))) continue;
    const r = el.getBoundingClientRect();
    out.overflow.push({what: describe(el), width: Math.round(r.width)});
    seen.add(el);
  }
  // text that runs out of its box (a long word, URL or inline code) without a scrolling ancestor
  const spilling = [...article.querySelectorAll('*')].filter(el => visible(el) && el.tagName !== 'PRE'
    && !el.closest('pre') && getComputedStyle(el).overflowX === 'visible' && !clipped(el)
    && el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0
    && el.getBoundingClientRect().left + el.scrollWidth > right + 1);
  for (const el of spilling) {
    if (spilling.some(o => o !== el && el.contains(o))) continue;  // the innermost box that spills
    if ([...seen].some(o => o.contains(el) || el.contains(o))) continue;
    out.overflow.push({what: describe(el) + ' (text)', width: el.scrollWidth});
  }
  for (const pre of article.querySelectorAll('pre')) {
    if (visible(pre) && pre.scrollWidth > pre.clientWidth + 1)
      out.wideCode.push({what: describe(pre), width: pre.scrollWidth});
  }
  const first = article.querySelector('.cell_output table, .cell_output img, .cell_output svg, .output table, .output img');
  if (first) out.firstResult = {what: describe(first), top: Math.round(first.getBoundingClientRect().top + scrollY)};
  return JSON.stringify(out);
})()
"""

WAIT_JS = r"""
(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return true;
})()
"""


class DevToolsPipe:
    """A Chromium started with ``--remote-debugging-pipe``: commands are written to its fd 3,
    answers and events read from its fd 4, each message one JSON text followed by a NUL byte."""

    def __init__(self, binary: str, profile_dir: str, extra: list[str]):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def child_fds() -> None:  # runs in the child before exec: put the pipe ends at fds 3 and 4
            r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)  # out of the way of 3 and 4 first
            w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)  # dup2 leaves the copies inheritable; every other fd is close-on-exec (PEP 446)
            os.dup2(w, 4)
            os.close(r)
            os.close(w)

        cmd = [binary, "--headless", "--remote-debugging-pipe", f"--user-data-dir={profile_dir}",
               "--no-first-run", "--no-default-browser-check", "--disable-gpu", "--hide-scrollbars",
               "--mute-audio", "--disable-extensions", *extra, "about:blank"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.insert(1, "--no-sandbox")  # Chromium refuses to start as root with its sandbox
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, close_fds=False, preexec_fn=child_fds)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def _read(self, timeout: float) -> dict | None:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from_chrome], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 60.0) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            answer = self._read(max(left, 0.0)) if left > 0 else None
            if answer is None:
                raise TimeoutError(f"no answer to {method} within {timeout} s")
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def wait_event(self, method: str, session: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if any(e.get("method") == method and e.get("sessionId") == session for e in self.events):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            event = self._read(left)
            if event is not None:
                self.events.append(event)

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            event = self._read(left)
            if event is not None:
                self.events.append(event)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_chrome, self._from_chrome):
            os.close(fd)


def console_messages(events: list[dict], session: str) -> tuple[list[str], list[str]]:
    """(errors, warnings) among a page's DevTools events."""
    errors, warnings = [], []
    for e in events:
        if e.get("sessionId") != session:
            continue
        p = e.get("params", {})
        if e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert", "warning"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            (warnings if p["type"] == "warning" else errors).append(f"console.{p['type']}: {text}")
        elif e.get("method") == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            text = d.get("exception", {}).get("description") or d.get("text", "")
            errors.append(f"uncaught: {text.splitlines()[0] if text else '?'}")
        elif e.get("method") == "Log.entryAdded":
            entry = p.get("entry", {})
            if entry.get("level") in ("error", "warning"):
                where = f" ({entry['url']})" if entry.get("url") else ""
                (errors if entry["level"] == "error" else warnings).append(
                    f"{entry.get('source', 'log')}: {entry.get('text', '')}{where}")
    return errors, warnings


def check_page(chrome: DevToolsPipe, page: Path, shot: Path, width: int, fold: int, settle: float) -> dict:
    context = chrome.send("Target.createBrowserContext")["browserContextId"]
    target = chrome.send("Target.createTarget", {"url": "about:blank", "browserContextId": context})["targetId"]
    session = chrome.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    try:
        for domain in ("Page", "Runtime", "Log"):
            chrome.send(f"{domain}.enable", session=session)
        chrome.send("Emulation.setDeviceMetricsOverride",
                    {"width": width, "height": fold, "deviceScaleFactor": 1, "mobile": False}, session=session)
        chrome.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        loaded = chrome.wait_event("Page.loadEventFired", session, timeout=60)
        chrome.send("Runtime.evaluate", {"expression": WAIT_JS, "awaitPromise": True}, session=session)
        chrome.drain(settle)  # late console messages (deferred and async scripts)
        found = chrome.send("Runtime.evaluate", {"expression": MEASURE_JS, "returnByValue": True}, session=session)
        measured = json.loads(found["result"]["value"])
        # full page: a window as tall as the page (capturing beyond a 1000 px viewport misplaces the
        # theme's sticky sidebars)
        size = chrome.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        height = max(fold, min(int(size["height"]) + 1, 16000))
        chrome.send("Emulation.setDeviceMetricsOverride",
                    {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        chrome.send("Runtime.evaluate", {"expression": WAIT_JS, "awaitPromise": True}, session=session)
        png = chrome.send("Page.captureScreenshot", {"format": "png"}, session=session)
        shot.write_bytes(base64.b64decode(png["data"]))
        errors, warnings = console_messages(chrome.events, session)
        if not loaded:
            errors.append("page did not finish loading within 60 s")
        if measured["scrollWidth"] > measured["window"]:
            measured["overflow"].insert(0, {"what": "document", "width": measured["scrollWidth"]})
        return {"errors": errors, "warnings": warnings, **measured}
    finally:
        chrome.send("Target.closeTarget", {"targetId": target})
        chrome.send("Target.disposeBrowserContext", {"browserContextId": context})
        chrome.events.clear()


def find_chromium(given: str | None) -> str | None:
    if given:
        return given
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("html", help="the built HTML folder (e.g. _build/site/_build/html)")
    p.add_argument("--out", default="page-check", help="folder for the screenshots (default: %(default)s)")
    p.add_argument("--width", type=int, default=1400, help="window width in CSS pixels (default: %(default)s)")
    p.add_argument("--fold", type=int, default=1000,
                   help="window height; a first result whose top is below it is below the fold (default: %(default)s)")
    p.add_argument("--settle", type=float, default=0.5, help="seconds to wait for late console messages")
    p.add_argument("--chromium", help="the browser binary (default: chromium on PATH)")
    p.add_argument("pages", nargs="*", help="only these pages (paths relative to HTML)")
    args = p.parse_intermixed_args(argv)

    root = Path(args.html)
    binary = find_chromium(args.chromium)
    if binary is None:
        print("chromium not found: apt-get update && apt-get install -y chromium (or pass --chromium)", file=sys.stderr)
        return 2
    if args.pages:
        pages = [root / q for q in args.pages]
    else:
        pages = sorted(q for q in root.rglob("*.html")
                       if q.relative_to(root).parts[0] not in ("_static", "_sources", "_images"))
    if not pages:
        print(f"no HTML pages under {root}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    n_err = n_over = n_below = 0
    with tempfile.TemporaryDirectory(prefix="check-pages-") as profile:
        chrome = DevToolsPipe(binary, profile, [f"--window-size={args.width},{args.fold}"])
        try:
            for page in pages:
                rel = page.relative_to(root).as_posix()
                r = check_page(chrome, page, out / (rel.replace("/", "__").removesuffix(".html") + ".png"),
                               args.width, args.fold, args.settle)
                first = r["firstResult"]
                fold = "-" if first is None else (f"{first['top']} px " + ("above" if first["top"] < args.fold else "BELOW"))
                overflow = ", ".join(f"{o['what']} {o['width']} px" for o in r["overflow"]) or "none"
                print(f"{rel:40s} errors {len(r['errors'])}  warnings {len(r['warnings'])}  "
                      f"overflow {len(r['overflow'])} (column {r['column']} px)  first result {fold}", flush=True)
                for msg in r["errors"]:
                    print(f"    error: {msg}")
                for msg in r["warnings"]:
                    print(f"    warning: {msg}")
                if r["overflow"]:
                    print(f"    overflow: {overflow}")
                if r["wideCode"]:
                    print("    wide code: " + ", ".join(f"{o['what']} {o['width']} px" for o in r["wideCode"]))
                n_err += bool(r["errors"])
                n_over += bool(r["overflow"])
                n_below += first is not None and first["top"] >= args.fold
        finally:
            chrome.close()
    print(f"\n{len(pages)} pages: {n_err} with console errors, {n_over} with horizontal overflow, "
          f"{n_below} with the first result below the fold ({args.fold} px); screenshots in {out}")
    return 1 if n_err or n_over else 0


if __name__ == "__main__":
    sys.exit(main())
