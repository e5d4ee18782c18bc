"""The HTML report opened in real headless Chromium (Debian's `chromium` through Playwright): the charts render."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tunelab.evaluate import EvalOptions, evaluate

CHROMIUM = Path("/usr/bin/chromium")


def _chromium() -> Path:
    """Debian's chromium, installed through apt when missing and allowed (root); never `playwright install`."""
    if not CHROMIUM.exists() and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, timeout=900, check=False)
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed and could not be installed (needs root and Debian's apt-get)")
    return CHROMIUM


def test_report_shows_the_base_vs_tuned_chart_in_chromium(store, classifier, regional_intents, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    executable = _chromium()
    report = evaluate(store, classifier, regional_intents, EvalOptions(group_column="region", resamples=100))["report"]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(executable), args=["--no-sandbox"])
        page = browser.new_page()
        blocked: list[str] = []
        page.route("http*://**", lambda route: (blocked.append(route.request.url), route.abort()))
        try:
            page.goto(Path(report).as_uri())
            chart = page.locator("#chart-headline")
            size = chart.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]")
            broken = page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0).length")
            title = page.title()
            shot = chart.screenshot(path=str(tmp_path / "headline.png"))
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    assert size[0] and size[1] > 200 and size[2] > 100, size
    assert broken == 0 and not blocked  # every chart is embedded; nothing is fetched from a network
    assert "Evaluation" in title and len(shot) > 5_000
