"""The OpenAPI docs at ``/schema`` render with no network: the server ships Swagger UI's files."""

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from litestar.testing import TestClient

from cryptodudez.resources.lake import Lake
from cryptodudez.transforms.lookup import LookupModel
from serving.app import ServingSettings, create_app
from tests.api.live import LiveServer

DOCS_PAGES = ["/schema", "/schema/swagger"]
LINKED = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


@pytest.fixture
def client(lake: Lake, model: LookupModel) -> Iterator[TestClient]:
    with TestClient(app=create_app(ServingSettings(lake=lake.uri, poll_seconds=60))) as c:
        yield c


@pytest.mark.parametrize("page", DOCS_PAGES)
def test_docs_page_links_only_files_the_server_serves(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    links = LINKED.findall(response.text)
    assert any(link.endswith(".js") for link in links)
    for link in links:
        assert urlsplit(link).netloc == "", f"{page} loads {link} from another host"
        asset = client.get(link)
        assert asset.status_code == 200, link
        assert len(asset.content) > 0, link


def test_assets_are_served_with_their_type_and_a_cache_lifetime(client: TestClient) -> None:
    page = client.get("/schema").text
    js = next(link for link in LINKED.findall(page) if link.endswith("swagger-ui-bundle.js"))
    response = client.get(js)
    assert "javascript" in response.headers["content-type"]
    assert response.headers["cache-control"] == "max-age=86400"
    assert client.get(js.replace("swagger-ui-bundle.js", "no-such-file.js")).status_code == 404


def test_docs_render_in_chromium_with_the_network_blocked(browser: Any, lake: Lake,
                                                          model: LookupModel) -> None:
    app = create_app(ServingSettings(lake=lake.uri, poll_seconds=60))
    blocked: list[str] = []
    with LiveServer(app) as base:
        context = browser.new_context(service_workers="block")
        try:
            tab = context.new_page()

            def only_loopback(route: Any) -> None:
                if urlsplit(route.request.url).hostname == "127.0.0.1":
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort()

            context.route("**/*", only_loopback)
            errors: list[str] = []
            tab.on("pageerror", lambda error: errors.append(str(error)))
            tab.goto(base + "/schema", wait_until="load", timeout=20_000)
            operation = tab.locator(".opblock-summary-path", has_text="/predict")
            try:
                operation.first.wait_for(state="visible", timeout=15_000)
            except Exception as exc:  # playwright's TimeoutError; say what was blocked
                pytest.fail(f"/predict never rendered ({type(exc).__name__}); "
                            f"requests to other hosts blocked: {blocked}; errors: {errors}")
            assert tab.locator(".opblock-summary-path", has_text="/health").count() == 1
            assert "cryptodudez prediction API" in tab.locator(".info .title").inner_text()
        finally:
            context.close()
    assert errors == []
    assert blocked == [], f"the docs asked for other hosts: {blocked}"
