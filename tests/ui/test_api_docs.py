"""The API docs render offline: every asset they load is served by this server."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from ui.api import create_app

CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
}


@pytest.fixture
def client(console_svc):
    with TestClient(create_app(console_svc)) as c:
        yield c


def _assets(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']""", html)


@pytest.mark.parametrize(
    ("page", "needed"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}),
        ("/redoc", {"redoc.standalone.js", "favicon.png"}),
    ],
)
def test_docs_reference_only_local_assets_that_are_served(client, page, needed):
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "/openapi.json" in html
    # Nothing is loaded from another host.
    assert not re.search(r"""["'(]\s*(?:https?:)?//""", html), html
    urls = {a or b for a, b in _assets(html)}
    assets = {u for u in urls if u.startswith("/docs-assets/")}
    assert {u.rsplit("/", 1)[1] for u in assets} == needed
    for url in assets:
        got = client.get(url)
        assert got.status_code == 200, url
        suffix = url[url.rfind(".") :]
        assert got.headers["content-type"].split(";")[0] in CONTENT_TYPES[suffix], url
        assert len(got.content) > 1000, url
    assert client.get("/openapi.json").status_code == 200


def test_swagger_oauth2_redirect_page_is_served(client):
    response = client.get("/docs/oauth2-redirect")
    assert response.status_code == 200 and "oauth2" in response.text.lower()
