"""The API docs in a real browser, served by a real server: Swagger UI and Redoc load, render every
operation of the OpenAPI schema, and nothing they load comes from another host."""

from __future__ import annotations

import httpx
import pytest

from tests.browser.support import chromium, is_local, screenshot, watched_page

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# Redoc's bundle as shipped asks for its footer logo from the vendor's CDN; the server hands out
# the bundle with a blank image there instead (leancore/urls.py), so no request may leave at all.
STOPPED_BY_THE_PAGES_CSP: set[str] = set()


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def schema(daphne_server) -> dict:
    response = httpx.get(f"{daphne_server.url}/api/schema/?format=json", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _operations(schema: dict) -> dict[str, tuple[str, str]]:
    """operationId -> (METHOD, path) for every operation of the schema."""
    found = {
        operation["operationId"]: (method.upper(), path)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }
    assert len(found) == sum(1 for item in schema["paths"].values() for method in item if method in METHODS)
    assert len(found) > 20, found  # the whole API, not an empty or truncated schema
    return found


def _assert_stayed_on_this_machine(traffic, page_url: str) -> None:
    assert page_url in traffic.requests
    assert not traffic.refused, f"requests to other hosts (stopped by the test): {traffic.refused}"
    outside = set(traffic.outside)
    unexpected = outside - STOPPED_BY_THE_PAGES_CSP
    assert not unexpected, f"requests to other hosts: {sorted(unexpected)}"
    for url in outside:  # the known one never reached the network: the browser refused it (CSP)
        assert f"{url}: csp" in traffic.failed, traffic.failed
    local_failures = [failure for failure in traffic.failed if is_local(failure.split(": ", 1)[0])]
    assert not local_failures, f"assets that did not load: {local_failures}"
    script_errors = [error for error in traffic.errors if not error.startswith("CSP: ")]
    assert not script_errors, script_errors


def test_swagger_ui_lists_every_operation_and_loads_only_from_this_server(daphne_server, browser, schema):
    operations = _operations(schema)
    url = f"{daphne_server.url}/api/docs/"
    with watched_page(browser) as (page, traffic):
        page.goto(url)
        page.locator(".swagger-ui .info .title").filter(has_text=schema["info"]["title"]).wait_for()
        blocks = page.locator(".opblock")
        blocks.last.wait_for()
        shown = blocks.evaluate_all(
            """blocks => blocks.map(block => [
                block.querySelector('.opblock-summary-method').textContent.trim(),
                block.querySelector('.opblock-summary-path').dataset.path,
            ])"""
        )
        assert sorted(map(tuple, shown)) == sorted(operations.values())
        assert page.locator(".swagger-ui .errors-wrapper").count() == 0  # no schema errors shown
        screenshot(page, "swagger-ui")
        _assert_stayed_on_this_machine(traffic, url)
        assert f"{daphne_server.url}/api/schema" in traffic.requests  # the schema came from here too


def test_redoc_lists_every_operation_and_loads_only_from_this_server(daphne_server, browser, schema):
    operations = _operations(schema)
    url = f"{daphne_server.url}/api/redoc/"
    with watched_page(browser) as (page, traffic):
        page.goto(url)
        page.locator("h1").filter(has_text=schema["info"]["title"]).wait_for()
        sections = page.locator("[data-section-id^='operation/']")
        sections.last.wait_for()
        shown = sections.evaluate_all("nodes => nodes.map(node => node.dataset.sectionId.slice('operation/'.length))")
        assert sorted(shown) == sorted(operations)
        in_menu = page.locator("[role=menu] li[data-item-id*='operation/']")
        assert in_menu.count() == len(operations)
        screenshot(page, "redoc")
        _assert_stayed_on_this_machine(traffic, url)
        assert f"{daphne_server.url}/api/schema" in traffic.requests


def test_the_watch_stops_and_reports_a_request_to_another_host(browser):
    """The record the tests above rely on: a request to another host is aborted before it leaves
    the machine, and reported."""
    with watched_page(browser) as (page, traffic):
        page.set_content('<img src="https://example.invalid/logo.png" alt="">')
        page.wait_for_load_state("load")
    assert traffic.refused == ["https://example.invalid/logo.png"]
    assert set(traffic.outside) == {"https://example.invalid/logo.png"}
    assert not is_local("https://example.invalid/logo.png")
    assert is_local("http://127.0.0.1:8000/static/x.js")
    assert is_local("data:image/png;base64,AAAA")
