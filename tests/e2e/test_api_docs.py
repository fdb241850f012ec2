"""The JSON API's Swagger UI at /api/v1/docs, in Chromium: it renders every operation, offline."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.browser import ARTIFACTS, FLAGS
from tests.support.server import Server


@pytest.mark.parametrize(("width", "name"), [(1400, "desktop"), (390, "phone")])
def test_swagger_ui_renders_the_operations_from_this_server_only(
    server: Server, chromium_path: str, width: int, name: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    spec = httpx.get(f"{server.url}/api/v1/openapi.json", timeout=10).json()
    operations = sum(len(methods) for methods in spec["paths"].values())
    assert operations > 5 and "/usage/me" in spec["paths"]
    own = urlsplit(server.url).netloc
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=FLAGS)
        page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
        requested: list[str] = []
        errors: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            response = page.goto(f"{server.url}/api/v1/docs")
            assert response is not None and response.status == 200
            expect(page.locator(".swagger-ui .info .title")).to_contain_text("llmtally API")
            expect(page.locator(".opblock")).to_have_count(operations)
            expect(page.locator(".opblock-summary-path", has_text="/usage/me").first).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / f"api-docs-{name}.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    foreign = [url for url in requested if urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc != own]
    assert not foreign, foreign
    assert any(url.endswith("/api/v1/openapi.json") for url in requested), requested
    assert any("/vendor/swagger-ui/swagger-ui-bundle.js" in url for url in requested), requested
