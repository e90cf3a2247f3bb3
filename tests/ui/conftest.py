"""Browser fixtures: Debian's Chromium driven by Playwright against real `imagegate serve`
processes on loopback (the sandbox provider).

- `browser` (session): headless Chromium from `/usr/bin/chromium` (`playwright install` is
  never run). Missing outside CI: the tests skip with the reason printed; in CI (`CI=true`)
  they fail, so a broken install cannot pass silently.
- `ui_server` (module): a server whose sandbox takes a moment (progress and previews show);
  `slow_server` (module): one whose tasks run long enough to cancel.
- `ui` (per test): opens pages through `Guarded`, which fails the test on any console error,
  any uncaught exception in a page, and any request to an origin other than the server's
  (every request is intercepted; a foreign one is aborted and recorded).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.e2e import Server, ServerFactory

CHROMIUM = Path("/usr/bin/chromium")
ADMIN_TOKEN = "iga_ui-tests-admin-token-0123456789"
# Long enough for a progress bar and partial previews, short enough for a quick suite.
UI_ENV = {"IMAGEGATE_SANDBOX_LATENCY": "1.5", "IMAGEGATE_ADMIN_TOKEN": ADMIN_TOKEN}
# Long enough to find the task running and cancel it from the page.
SLOW_ENV = {"IMAGEGATE_SANDBOX_LATENCY": "60", "IMAGEGATE_ADMIN_TOKEN": ADMIN_TOKEN}
LAUNCH_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-extensions",
               "--disable-sync", "--no-first-run", "--disable-default-apps",
               "--disable-component-update", "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need Chromium in CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    factory = ServerFactory(lambda: tmp_path_factory.mktemp("imagegate-ui"))
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="module")
def ui_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    yield from _factory(tmp_path_factory)


@pytest.fixture(scope="module")
def ui_server(ui_servers: ServerFactory) -> Server:
    return ui_servers.start(UI_ENV)


@pytest.fixture(scope="module")
def slow_server(ui_servers: ServerFactory) -> Server:
    return ui_servers.start(SLOW_ENV)


class Guarded:
    """A browser context whose pages are watched: console errors, page errors and requests
    to other origins are recorded, and `check()` fails on any of them."""

    def __init__(self, browser: Any, *, width: int = 1280, height: int = 900) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height},
                                           accept_downloads=False)
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.requests: list[Any] = []
        # URL parts whose failed loads a test provokes on purpose (e.g. a refused route).
        self.expected_failures: list[str] = []
        self.origin: str | None = None
        self.context.route("**/*", self._route)

    def _route(self, route: Any) -> None:
        url = route.request.url
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if parts.scheme in ("data", "blob") or origin == self.origin:
            route.continue_()
            return
        self.foreign.append(url)
        route.abort()

    def open(self, server: Server, path: str) -> Any:
        self.origin = server.base_url
        page = self.context.new_page()
        page.on("console", lambda msg: self._console(msg))
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("request", lambda req: self.requests.append(req))
        page.goto(server.base_url + path)
        return page

    def _console(self, msg: Any) -> None:
        if msg.type != "error":
            return
        where = (msg.location or {}).get("url", "")
        if any(part in where for part in self.expected_failures):
            return
        self.errors.append(f"console: {msg.text} ({where})")

    def check(self) -> None:
        assert not self.foreign, f"requests to other origins: {self.foreign}"
        assert not self.errors, f"errors in the page: {self.errors}"


@pytest.fixture
def ui(browser: Any) -> Iterator[Guarded]:
    guarded = Guarded(browser)
    try:
        yield guarded
        guarded.check()
    finally:
        guarded.context.close()


def wait_js(page: Any, expression: str, timeout: float = 30.0) -> Any:
    """Evaluate `expression` in the page until it is truthy; its value.

    Playwright's `wait_for_function` compiles a function-looking string with eval inside the
    page, which the UI's CSP (rightly) refuses, so the polling happens from here instead."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout:.0f}s: {expression}")
        page.wait_for_timeout(100)


def sign_in(page: Any, key: str) -> None:
    page.get_by_test_id("api-key").fill(key)
    page.get_by_test_id("sign-in").click()
    page.get_by_test_id("prompt").wait_for()
    # The model list has arrived once the picker shows pixels.
    wait_js(page, "document.querySelector('#resolved').textContent.includes('×')")
