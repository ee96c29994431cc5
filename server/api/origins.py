"""Which browser origins may talk to the API: the configured list, or the same origin.

A request without an Origin header is not from a browser page and is let through (it is
authenticated like any other). CORS for HTTP is Starlette's middleware, configured from
the same list; WebSockets, which CORS does not cover, are checked here.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import Scope


def origin_allowed(scope: Scope, allowed: list[str]) -> bool:
    headers = Headers(scope=scope)
    origin = headers.get("origin")
    if origin is None:
        return True
    origin = origin.rstrip("/")
    if origin in allowed:
        return True
    try:
        origin_host = urlsplit(origin).netloc
    except ValueError:
        return False
    return bool(origin_host) and origin_host == headers.get("host")
