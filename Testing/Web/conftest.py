"""End-to-end tests of ``tumorsynth web`` in a real browser: the system's headless Chromium
(Debian's ``chromium-headless-shell`` or ``chromium``; ``make test`` installs it with apt when
missing and root is available) driven by Playwright from PyPI (never ``playwright install``).

One server (``tumorsynth web --port 0 --test-hooks``) for the whole session; every test opens
its own page, so every test has its own scene. Everything skips with the reason when the
``[web]`` extra, Playwright or Chromium is missing.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_NAMES = ("chromium-headless-shell", "chromium", "chromium-browser")
#: Chromium on a closed network: no sandbox (root in CI), no GPU, no background connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 900}
PAGE_TIMEOUT_MS = 45_000


def chromium_path() -> str | None:
    """``TUMORSYNTH_CHROMIUM`` or the first Chromium on PATH (or in /usr/lib/chromium)."""
    if os.environ.get("TUMORSYNTH_CHROMIUM"):
        return os.environ["TUMORSYNTH_CHROMIUM"]
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    bundled = Path("/usr/lib/chromium/chromium-headless-shell")
    return str(bundled) if bundled.exists() else None


def _skip_reason() -> str | None:
    for module, extra in (("trame_slicer", "[web]"), ("playwright", "[web-test]")):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.{extra}'): web tests skipped"
    if chromium_path() is None:
        return ("no Chromium found (apt-get install chromium-headless-shell, or set "
                "TUMORSYNTH_CHROMIUM): web tests skipped")
    return None


SKIP_REASON = _skip_reason()
if SKIP_REASON:
    print(f"\nTesting/Web: {SKIP_REASON}", file=sys.stderr)


@pytest.fixture(scope="session")
def web_url():
    """Start ``tumorsynth web`` on a free port with the test hooks; yield its URL."""
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    log = open(REPO / "Testing" / "Web" / "server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "TumorSynthLib.cli", "web", "--port", "0", "--test-hooks"],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        yield _wait_for_url(process, Path(log.name))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _wait_for_url(process: subprocess.Popen, log: Path, timeout: float = 40.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(r"front end: (http://\S+)", log.read_text())
        if match:
            return match.group(1).replace("localhost", "127.0.0.1")
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(f"tumorsynth web did not start:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def browser(web_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser: Any, web_url: str) -> Any:
    """A new tab on the web front end, once the phantom is shown and the views have their
    size (the first resize)."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto(web_url)
    page.wait_for_function("() => { const s = document.querySelector('#ts-case-source');"
                           " return s && s.textContent.includes('phantom'); }")
    page.wait_for_function("() => document.querySelectorAll('img.image-display-area').length >= 4")
    page.wait_for_timeout(800)                 # let the first resize and render arrive
    return page


@pytest.fixture
def page(browser, web_url):
    page = open_page(browser, web_url)
    yield page
    page.context.close()
