"""A real browser for the tests: Playwright driving Debian's Chromium (``/usr/bin/chromium``, installed
by ``scripts/test.sh`` from Debian's packages; never ``playwright install``), a record of every
request a page makes (anything not on this machine is refused and reported), and the screenshots
every run leaves under ``var/test-output/browser/``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.servers import ROOT

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = ROOT / "var" / "test-output" / "browser"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
TIMEOUT_MS = 20_000  # a page that does not render in this long fails (two loaded cores: generous)


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium; a missing one fails the test (CI installs it), never skips it."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"Chromium is missing at {CHROMIUM}: the browser tests need Debian's chromium package "
            "(scripts/test.sh installs it: apt-get install chromium). Never `playwright install`.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium's sandbox refuses to run as root
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            yield browser
        finally:
            browser.close()


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname in LOCAL_HOSTS


@dataclass
class Traffic:
    """Every request the page made, the ones refused for leaving the machine, and what went wrong."""

    requests: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # network errors and 4xx/5xx answers
    errors: list[str] = field(default_factory=list)  # uncaught script errors, CSP violations

    @property
    def outside(self) -> list[str]:
        return [url for url in self.requests + self.refused if not is_local(url)]


@contextmanager
def watched_page(browser) -> Iterator[tuple[object, Traffic]]:
    """A fresh context and page whose every request is recorded; a request to another host is
    aborted before it leaves (and recorded, so the test fails on it)."""
    traffic = Traffic()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)

    def guard(route) -> None:
        url = route.request.url
        if is_local(url):
            route.continue_()
        else:
            traffic.refused.append(url)
            route.abort("blockedbyclient")

    context.route("**/*", guard)
    page = context.new_page()
    page.on("request", lambda request: traffic.requests.append(request.url))
    page.on("websocket", lambda socket: traffic.requests.append(socket.url))
    # a request the page itself dropped by moving on to the next page (ERR_ABORTED) is no failure
    page.on(
        "requestfailed",
        lambda request: (
            request.failure != "net::ERR_ABORTED" and traffic.failed.append(f"{request.url}: {request.failure}")
        ),
    )
    page.on("response", lambda r: r.status >= 400 and traffic.failed.append(f"{r.url}: HTTP {r.status}"))
    page.on("pageerror", lambda error: traffic.errors.append(f"script error: {error}"))
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and "Content Security Policy" in message.text
            and traffic.errors.append(f"CSP: {message.text}")
        ),
    )
    try:
        yield page, traffic
    finally:
        context.close()


def screenshot(page, name: str, *, full_page: bool = False) -> Path:
    """Saved on every run (``var/test-output/browser/<name>.png``, gitignored); checked non-empty."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    path.unlink(missing_ok=True)  # a stale file from an earlier run must not pass for this one
    page.screenshot(path=str(path), full_page=full_page)
    assert path.is_file(), path
    data = path.read_bytes()
    assert len(data) > 1000, f"{path}: {len(data)} bytes"
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), path
    return path
