"""The paper exchange served over Alpaca's own protocols, so alpaca-py can be pointed at it.

`python -m server paper-exchange --port 8090 --key KEY:SECRET` serves it; tests build it
in-process with `create_facade(exchange, keys)`.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server.brokers.paper.exchange import PaperExchange
from server.brokers.paper.facade import data, streams, trading, wire
from server.brokers.paper.facade.access import Faults, KeyStore, RateLimiter
from server.brokers.paper.facade.http import FacadeError, FacadeGate, FacadeState, error_response, read_json, state_of
from server.brokers.paper.facade.streams import StreamRegistry


async def set_faults(request: Request) -> Response:
    """Test hook: POST {"latency_seconds", "errors_5xx", "errors_429", "hangs", "drop_streams"}."""
    state = state_of(request)
    token = request.headers.get("x-fault-token", "")
    if state.fault_token is None or not hmac.compare_digest(token.encode(), state.fault_token.encode()):
        return JSONResponse(wire.error(40310000, "fault injection is not enabled"), status_code=403)
    try:
        body = await read_json(request)
        state.faults.update(body)
    except FacadeError as error:
        return error_response(error)
    except ValueError as error:
        return JSONResponse(wire.error(42210000, str(error)), status_code=422)
    if body.get("drop_streams"):
        request.app.state.streams.drop_all()
    return JSONResponse({"ok": True})


def create_facade(
    exchange: PaperExchange,
    keys: KeyStore,
    *,
    faults: Faults | None = None,
    rate_limit_per_minute: int | None = None,
    fault_token: str | None = None,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    limiter = RateLimiter(rate_limit_per_minute) if rate_limit_per_minute else RateLimiter()
    app = Starlette(
        routes=[
            *trading.routes,
            *data.routes,
            *streams.routes,
            *extra_routes,
            Route("/_faults", set_faults, methods=["POST"]),
        ],
        middleware=[Middleware(FacadeGate)],
    )
    app.state.facade = FacadeState(exchange, keys, limiter, faults or Faults(), fault_token)
    app.state.streams = StreamRegistry()
    return app
