"""The self-hosted GraphiQL page on GET /graphql: our own assets, a strict CSP, nothing from a CDN."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.api import graphiql
from server.api.graphiql import STATIC_DIR, assets, content_security_policy

pytestmark = pytest.mark.anyio
BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
QUOTE = '{ quote(symbol: "AAPL") { symbol bidPrice } }'


def _references(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]*)"', page)


def _directives(policy: str) -> dict[str, list[str]]:
    parsed = (directive.split() for directive in policy.split(";"))
    return {name: values for name, *values in parsed}


async def test_a_browser_gets_our_page_not_strawberrys(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers=BROWSER)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert '<div id="root"></div>' in page
    built = assets()
    assert f'src="/graphiql/static/{built.script}"' in page
    assert f'href="/graphiql/static/{built.stylesheet}"' in page
    # Nothing from another host: every reference is a same-origin path (or the empty data: icon).
    assert all(ref.startswith("/") or ref == "data:," for ref in _references(page)), _references(page)
    assert "https://" not in page
    assert "<script>" not in page  # no inline script, which the CSP would refuse anyway
    assert response.headers["cache-control"] == "no-cache"


async def test_the_page_has_a_same_origin_content_security_policy(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers=BROWSER)
    policy = _directives(response.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert policy["connect-src"] == ["'self'", "ws://testserver", "wss://testserver"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert not any("unsafe-eval" in value for values in policy.values() for value in values)


def test_a_strange_host_header_never_reaches_the_policy() -> None:
    assert "ws://" not in content_security_policy("evil.example; script-src *")
    assert "ws://" not in content_security_policy(None)
    assert "connect-src 'self' ws://[::1]:8081 wss://[::1]:8081;" in content_security_policy("[::1]:8081")


async def test_the_assets_it_references_are_served_for_good(client: httpx.AsyncClient) -> None:
    page = (await client.get("/graphql", headers=BROWSER)).text
    [stylesheet, script] = [ref for ref in _references(page) if ref.startswith("/graphiql/static/")]
    expected = {script: "text/javascript; charset=utf-8", stylesheet: "text/css; charset=utf-8"}
    for path, content_type in expected.items():
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == content_type
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.content == (STATIC_DIR / path.rsplit("/", 1)[1]).read_bytes()
        again = await client.get(path, headers={"if-none-match": response.headers["etag"]})
        assert again.status_code == 304
    assert (await client.get("/graphiql/static/nothing-here.js")).status_code == 404


async def test_graphql_over_json_still_answers(client: httpx.AsyncClient) -> None:
    posted = await client.post("/graphql", json={"query": QUOTE})
    # A query in the URL is an operation, never the page, whatever the Accept header says.
    fetched = await client.get("/graphql", params={"query": QUOTE}, headers=BROWSER)
    for response in (posted, fetched):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["data"]["quote"]["symbol"] == "AAPL"


@pytest.fixture
def unbuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(graphiql, "MANIFEST", tmp_path / "manifest.json")
    assets.cache_clear()
    yield
    assets.cache_clear()


@pytest.mark.usefixtures("unbuilt")
def test_missing_assets_stop_the_start_with_the_rebuild_command() -> None:
    with pytest.raises(RuntimeError, match=r"npm ci && npm run build"):
        graphiql.graphiql_routes()
