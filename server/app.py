"""create_app(settings) -> Starlette; the lifespan starts and stops the services."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from server.api.graphiql import graphiql_routes
from server.api.http import graphql_app
from server.brokers.paper.clock import Clock
from server.db import ping
from server.limits import BodySizeLimitMiddleware
from server.log import RequestIdMiddleware, configure_logging
from server.metrics.asgi import MetricsMiddleware
from server.metrics.endpoint import metrics_endpoint
from server.security.secrets import ServerSecrets
from server.services import Services, run_services
from server.settings import Settings

logger = logging.getLogger(__name__)
READINESS_TIMEOUT_SECONDS = 2.0


async def healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def _check(name: str, probe: Awaitable[None]) -> bool:
    try:
        await asyncio.wait_for(probe, READINESS_TIMEOUT_SECONDS)
    except Exception as error:  # noqa: BLE001  (any failure means "not ready"; the reason is logged)
        logger.warning("readiness check failed", extra={"check": name, "error": type(error).__name__})
        return False
    return True


async def readyz(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    checks = {
        "database": await _check("database", ping(services.engine)),
        "broker": await _check("broker", services.quote_source.ping()),
    }
    ready = all(checks.values())
    body = {
        "status": "ready" if ready else "unavailable",
        "checks": {k: "ok" if v else "failing" for k, v in checks.items()},
    }
    return JSONResponse(body, status_code=200 if ready else 503)


async def index(_request: Request) -> JSONResponse:
    return JSONResponse({"service": "alpaca-graphql", "graphql": "/graphql", "health": "/healthz", "ready": "/readyz"})


def create_app(
    settings: Settings | None = None, *, clock: Clock | None = None, secrets: ServerSecrets | None = None
) -> Starlette:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with run_services(settings, clock=clock, secrets=secrets) as services:
            app.state.services = services
            # What start-up built lives as long as the process: keep it out of the
            # collector's full passes, which otherwise stall every subscriber now and then.
            gc.freeze()
            logger.info("server ready", extra={"environment": settings.environment.value})
            yield

    graphql = graphql_app(settings)
    return Starlette(
        routes=[
            Route("/", index),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *([Route("/metrics", metrics_endpoint)] if settings.metrics_enabled else []),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            *graphiql_routes(),
        ],
        middleware=[
            Middleware(MetricsMiddleware),
            Middleware(RequestIdMiddleware),
            *_cors(settings),
            Middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes),
        ],
        lifespan=lifespan,
    )


def _cors(settings: Settings) -> list[Middleware]:
    """Cross-origin calls only from the listed origins, bearer tokens only (no cookies)."""
    if not settings.allowed_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-Id"],
            allow_credentials=False,
            max_age=600,
        )
    ]


def app_from_env() -> Starlette:
    """Factory for `uvicorn --factory server.app:app_from_env`."""
    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings)
