"""The report in a real browser: Debian's chromium, headless. Skipped (with the reason) where
chromium is not installed; CI installs it (.ci/run)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from test_report import full_inputs

from taskscout.report import pool_report
from taskscout.report.browser import MAX_SHOT_HEIGHT, check_page, find_chromium, screenshot
from taskscout.report.html import CSP

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)


def test_report_loads_without_console_error_and_shows_every_figure(tmp_path):
    rep = pool_report(full_inputs())
    page = rep.write(tmp_path / "report.html")
    result = check_page(page)
    assert result["errors"] == []
    assert not [line for line in result["console"] if "rror" in line]
    assert [f["id"] for f in result["figures"]] == rep.figure_ids
    for fig in result["figures"]:
        assert fig["svg"] and fig["width"] > 100 and fig["height"] > 100, fig
    png = screenshot(page, tmp_path / "report.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    # the whole page: the PNG is as tall as the page the probe measured (IHDR: width, height)
    shot_w, shot_h = (int.from_bytes(data[i : i + 4], "big") for i in (16, 20))
    assert result["height"] > 1000
    assert shot_w == 1400 and shot_h == min(MAX_SHOT_HEIGHT, result["height"] + 16)
    keep = os.environ.get("TASKSCOUT_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(keep) / "test_report.png")


def test_the_probe_sees_errors_and_fetches(tmp_path):
    """The check can fail: a page that logs an error and tries to fetch from the network."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        f'content="{CSP}"></head><body><figure id="f"></figure>'
        '<img src="http://127.0.0.1:9/x.png"><script>console.error("boom")</script>'
        "</body></html>"
    )
    result = check_page(bad)
    text = " ".join(result["errors"])
    assert "console.error: boom" in text
    assert "blocked: img-src" in text
    assert result["figures"] == [{"id": "f", "svg": False, "width": 0, "height": 0}]
