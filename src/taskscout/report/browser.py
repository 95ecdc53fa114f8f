"""Render a report in a real browser (Debian's ``chromium``, headless): check it and shoot it.

:func:`check_page` loads a copy of the page with a small probe script (the only change: the
Content-Security-Policy of the copy also allows that inline script) that records every
``error`` event, every ``console.error`` call and every blocked fetch (a
``securitypolicyviolation``: the page tried to reach something), then writes them, and the
ids and drawn sizes of the page's figures, into the DOM that ``--dump-dom`` prints.
:func:`screenshot` saves a PNG of the unmodified page, by default the whole page (its height
measured by the probe first).
"""

from __future__ import annotations

import html as html_lib
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from taskscout.report.html import CSP

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)

PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => __errors.push('error: ' + e.message));
document.addEventListener('securitypolicyviolation',
  e => __errors.push('blocked: ' + e.violatedDirective + ' ' + e.blockedURI));
const __ce = console.error;
console.error = function (...a) { __errors.push('console.error: ' + a.join(' '));
  __ce.apply(console, a); };
window.addEventListener('load', () => {
  const figs = [...document.querySelectorAll('figure[id]')].map(f => {
    const s = f.querySelector('svg'); const r = s ? s.getBoundingClientRect() : null;
    return {id: f.id, svg: !!s, width: r ? r.width : 0, height: r ? r.height : 0}; });
  const out = document.createElement('pre'); out.id = '__probe';
  const height = Math.ceil(document.documentElement.scrollHeight);
  out.textContent = JSON.stringify({errors: __errors, figures: figs, height: height});
  document.body.appendChild(out);
});
</script>"""

#: Tallest full-page screenshot (pixels); longer pages are cut there.
MAX_SHOT_HEIGHT = 16_000

_PROBE_OUT = re.compile(r'<pre id="__probe">(.*?)</pre>', re.S)


def find_chromium() -> str | None:
    """Path of a chromium executable on PATH (or ``/usr/bin/chromium``), None if absent."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def _run(chromium: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="taskscout-chromium-") as profile:
        cmd = [chromium, *FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(  # noqa: S603 - our own fixed flags and a local file
            cmd, capture_output=True, text=True, timeout=timeout, check=False
        )


def check_page(
    html_path: str | Path,
    *,
    chromium: str | None = None,
    timeout: float = 90,
    width: int = 1400,
) -> dict:
    """Load ``html_path`` headless with the probe; returns ``{"errors": [...], "figures":
    [{"id", "svg", "width", "height"}, ...], "height": the page's height in CSS pixels at the
    default window width, "console": [chromium's console log lines]}``.
    ``FileNotFoundError`` without chromium; ``RuntimeError`` if the page never loaded."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("no chromium executable found (apt-get install chromium)")
    page = Path(html_path).read_text(encoding="utf-8")
    page = page.replace(CSP, CSP + "; script-src 'unsafe-inline'", 1)
    page = page.replace("<head>", "<head>" + PROBE, 1)
    with tempfile.TemporaryDirectory(prefix="taskscout-probe-") as tmp:
        probe = Path(tmp) / "probe.html"
        probe.write_text(page, encoding="utf-8")
        proc = _run(
            chromium,
            [
                "--enable-logging=stderr",
                "--v=0",
                f"--window-size={width},900",
                "--virtual-time-budget=5000",
                "--dump-dom",
                probe.as_uri(),
            ],
            timeout,
        )
    found = _PROBE_OUT.search(proc.stdout)
    if not found:
        raise RuntimeError(
            f"chromium did not load the page (exit {proc.returncode}): {proc.stderr[-2000:]}"
        )
    result = json.loads(html_lib.unescape(found.group(1)))
    result["console"] = [line for line in proc.stderr.splitlines() if ":CONSOLE(" in line]
    return result


def screenshot(
    html_path: str | Path,
    png_path: str | Path,
    *,
    width: int = 1400,
    height: int | None = None,
    chromium: str | None = None,
    timeout: float = 90,
) -> Path:
    """A PNG of the first ``width`` x ``height`` pixels of the page; returns its path.
    ``height`` None: the whole page (measured with :func:`check_page` at ``width``), at most
    :data:`MAX_SHOT_HEIGHT` pixels. ``FileNotFoundError`` without chromium; ``RuntimeError``
    if no PNG was written."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("no chromium executable found (apt-get install chromium)")
    if height is None:
        measured = check_page(html_path, chromium=chromium, timeout=timeout, width=width)
        height = min(MAX_SHOT_HEIGHT, max(600, int(measured.get("height") or 0) + 16))
    png_path = Path(png_path).resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    proc = _run(
        chromium,
        [
            f"--screenshot={png_path}",
            f"--window-size={width},{height}",
            "--virtual-time-budget=5000",
            Path(html_path).resolve().as_uri(),
        ],
        timeout,
    )
    if not png_path.exists() or png_path.stat().st_size == 0:
        raise RuntimeError(
            f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"
        )
    return png_path
