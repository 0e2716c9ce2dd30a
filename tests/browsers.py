"""Headless Debian Chromium for the browser tests (never a downloaded browser), driven by
Playwright; the `chromium` fixture (tests/conftest.py) holds one per pytest process."""

from __future__ import annotations

import contextlib

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-component-update",
]
CONTEXT = {"viewport": {"width": 1400, "height": 900}}
# How long a locator, and a web-first assertion (`expect`), waits. expect's own default of
# 5 s failed tests on a loaded machine (2026-12-05) where the same wait by a locator passed.
TIMEOUT_MS = 45_000


class Chromium:
    """One headless Chromium per pytest process (xdist worker), launched at first use.

    Starting Playwright's driver and a browser cost one to two seconds of CPU in each of
    some thirty tests; a new context per test gives each one what a new browser gave (its
    own cookies, storage and cache). A browser that crashed is launched again."""

    def __init__(self) -> None:
        self._pw = None
        self._browser = None

    def browser(self):
        if self._browser is None or not self._browser.is_connected():
            from playwright.sync_api import expect, sync_playwright

            if self._pw is None:
                self._pw = sync_playwright().start()
                expect.set_options(timeout=TIMEOUT_MS)
            self._browser = self._pw.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
            )
        return self._browser

    def new_page(self, **context_options):
        """A page in a context of its own (CONTEXT, then `context_options`)."""
        context = self.browser().new_context(**{**CONTEXT, **context_options})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        return page

    def close(self) -> None:
        if self._browser is not None:
            with contextlib.suppress(Exception):
                self._browser.close()
        if self._pw is not None:
            self._pw.stop()
        self._pw = self._browser = None
