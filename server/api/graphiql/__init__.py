"""The self-hosted GraphiQL page (GET /graphql from a browser) and its static assets.

The assets are built from web/graphiql (`npm ci && npm run build`) into static/, with
content-hashed names listed in manifest.json, and ship in the package: nothing is loaded
from a CDN, so the page works offline, and the server needs no node.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from html import escape
from os import PathLike, stat_result
from pathlib import Path
from string import Template

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
MANIFEST = HERE / "manifest.json"
STATIC_PATH = "/graphiql/static"

# Hashed names never change content: cache them for a year. The page itself is revalidated,
# so a new build's names are picked up at once.
IMMUTABLE = "public, max-age=31536000, immutable"
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
# A Host header we are willing to repeat in the CSP (anything else gets 'self' alone).
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")

_PAGE = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>GraphiQL · Alpaca GraphQL</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="$stylesheet">
<script defer src="$script"></script>
</head>
<body>
<div id="root"></div>
<noscript>GraphiQL needs JavaScript. The API itself answers POST $endpoint.</noscript>
</body>
</html>
""")


@dataclass(frozen=True)
class Assets:
    script: str
    stylesheet: str


@cache
def assets() -> Assets:
    """The built file names; a missing build is an error at start-up, not at the first page view."""
    try:
        manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
        built = Assets(script=manifest["script"], stylesheet=manifest["stylesheet"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        rebuild = "run `npm ci && npm run build` in web/graphiql"
        raise RuntimeError(f"GraphiQL assets are not built ({MANIFEST}): {rebuild}") from error
    for name in (built.script, built.stylesheet):
        if not (STATIC_DIR / name).is_file():
            raise RuntimeError(f"GraphiQL asset {name} is missing from {STATIC_DIR}")
    return built


def content_security_policy(host: str | None) -> str:
    # CSP3 lets 'self' cover ws(s) to the same host; older engines need the host spelled out.
    sockets = f" ws://{host} wss://{host}" if host and _HOST.fullmatch(host) else ""
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",  # GraphiQL's dialogs and menus inject <style> elements
            "img-src 'self' data:",
            "font-src 'self' data:",  # GraphiQL's stylesheet inlines its fonts
            f"connect-src 'self'{sockets}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def graphiql_page(request: Request) -> HTMLResponse:
    built = assets()
    # Paths (not absolute URLs) so a TLS-terminating proxy never turns them into mixed content.
    root = request.scope.get("root_path", "")
    page = _PAGE.substitute(
        script=escape(f"{root}{STATIC_PATH}/{built.script}"),
        stylesheet=escape(f"{root}{STATIC_PATH}/{built.stylesheet}"),
        endpoint=escape(request.url.path),
    )
    headers = {
        "Content-Security-Policy": content_security_policy(request.headers.get("host")),
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    return HTMLResponse(page, headers=headers)


class HashedStaticFiles(StaticFiles):
    """Static files whose names carry their content hash: cached for good, exact content types."""

    def file_response(
        self, full_path: str | PathLike[str], stat_result: stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = IMMUTABLE
        if isinstance(response, FileResponse):  # not a 304, which has no body to describe
            response.headers["X-Content-Type-Options"] = "nosniff"
            if content_type := CONTENT_TYPES.get(Path(full_path).suffix):
                response.headers["Content-Type"] = content_type
        return response


def graphiql_routes() -> list[BaseRoute]:
    assets()
    return [Mount(STATIC_PATH, app=HashedStaticFiles(directory=STATIC_DIR), name="graphiql-static")]
