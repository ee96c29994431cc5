"""HTTP requests and open WebSockets, counted at the ASGI boundary.

Routes are labelled only by the app's own paths, read from its route table (a mount by its
prefix; anything else is "other"), and a WebSocket counts from the moment the server
accepts it, by the subprotocol it accepted.
"""

from __future__ import annotations

import time

from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.metrics.labels import OTHER
from server.metrics.registry import Metrics

METHODS = frozenset({"GET", "HEAD", "POST", "OPTIONS"})
WEBSOCKET_PROTOCOLS = frozenset({"graphql-transport-ws", "graphql-ws"})


def _metrics_of(scope: Scope) -> Metrics | None:
    app = scope.get("app")
    services = getattr(getattr(app, "state", None), "services", None)
    return getattr(services, "metrics", None)


class _RouteLabels:
    """The label of a request path: a route's own path, a mount's prefix, or "other"."""

    def __init__(self, routes: list[object]) -> None:
        self._paths = frozenset(route.path for route in routes if not isinstance(route, Mount))  # type: ignore[attr-defined]
        self._mounts = tuple(route.path for route in routes if isinstance(route, Mount))

    def of(self, path: str) -> str:
        if path in self._paths:
            return path
        return next((mount for mount in self._mounts if path.startswith(mount + "/")), OTHER)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes: _RouteLabels | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = _metrics_of(scope) if scope["type"] in {"http", "websocket"} else None
        if metrics is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await self._http(metrics, scope, receive, send)
        else:
            await self._websocket(metrics, scope, receive, send)

    async def _http(self, metrics: Metrics, scope: Scope, receive: Receive, send: Send) -> None:
        if self._routes is None:  # the app's route table, read once it is built
            self._routes = _RouteLabels(scope["app"].routes)
        route = self._routes.of(scope["path"])
        method = scope["method"] if scope["method"] in METHODS else OTHER
        started = time.perf_counter()
        answered = False

        async def observed(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start" and not answered:
                answered = True
                metrics.http_request(route, method, message["status"], time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, observed)
        except Exception:
            if not answered:  # failed before answering: the server's error middleware answers 500
                metrics.http_request(route, method, 500, time.perf_counter() - started)
            raise

    async def _websocket(self, metrics: Metrics, scope: Scope, receive: Receive, send: Send) -> None:
        opened: str | None = None

        async def observed(message: Message) -> None:
            nonlocal opened
            await send(message)
            if message["type"] == "websocket.accept" and opened is None:
                protocol = message.get("subprotocol")
                opened = protocol if protocol in WEBSOCKET_PROTOCOLS else "none"
                metrics.websocket_opened(opened)

        try:
            await self.app(scope, receive, observed)
        finally:
            if opened is not None:
                metrics.websocket_closed(opened)
