"""The facade's request plumbing: key auth, the per-key rate limit, faults, Alpaca error bodies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from server.brokers.base import NotFoundError, OrderRejectedError, UnknownSymbolError
from server.brokers.paper.exchange import PaperExchange
from server.brokers.paper.facade import wire
from server.brokers.paper.facade.access import Faults, KeyStore, RateLimiter

logger = logging.getLogger(__name__)
KEY_HEADER = "apca-api-key-id"
SECRET_HEADER = "apca-api-secret-key"
HANG_SECONDS = 3600.0


class FacadeError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class FacadeState:
    exchange: PaperExchange
    keys: KeyStore
    limiter: RateLimiter
    faults: Faults
    fault_token: str | None


def state_of(request: Request) -> FacadeState:
    return request.app.state.facade


def exchange_of(request: Request) -> PaperExchange:
    return state_of(request).exchange


def account_of(request: Request) -> str:
    return request.scope["facade.account_id"]


async def read_json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):
        raise FacadeError(400, 40010000, "request body format is invalid") from None
    if not isinstance(body, dict):
        raise FacadeError(400, 40010000, "request body format is invalid")
    return body


MAX_COUNT_DIGITS = 9


def whole_number(text: str | None) -> int | None:
    """A query parameter that must be a whole number (a limit, a page token), or None when
    absent or not one. ASCII digits only, and short: int() takes "²" and ten thousand digits
    make it raise."""
    if text is None or not 0 < len(text) <= MAX_COUNT_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def parse_time(value: str | None, name: str, *, status: int) -> datetime | None:
    """An ISO-8601 time with a zone, as Alpaca's APIs take them; `status` is the API's answer to a bad one."""
    if not value:
        return None
    code = status * 100000 + 10000  # Alpaca: 400 -> 40010000, 422 -> 42210000
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FacadeError(status, code, f"invalid {name}") from None
    if moment.tzinfo is None:
        raise FacadeError(status, code, f"{name} needs a time zone")
    return moment


def _error(status: int, code: int, message: str) -> Response:
    return JSONResponse(wire.error(code, message), status_code=status)


def error_response(error: Exception) -> Response:
    if isinstance(error, FacadeError):
        return _error(error.status, error.code, error.message)
    if isinstance(error, OrderRejectedError):
        return _error(error.status, error.code, error.message)
    if isinstance(error, NotFoundError):
        return _error(404, 40410000, f"{error.what} not found")
    if isinstance(error, UnknownSymbolError):
        return _error(422, 42210000, str(error))
    logger.exception("facade request failed", exc_info=error)
    return _error(500, 50010000, "internal server error")


async def _hang_until_the_client_leaves(request: Request) -> None:
    # Only the client (or HANG_SECONDS) can end it: receive() returns http.disconnect when it goes away.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(HANG_SECONDS):
            while (await request.receive())["type"] != "http.disconnect":
                pass


class FacadeGate:
    """Every REST call: faults first, then the key pair, then the rate limit, then the route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_"):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        state = state_of(request)
        response = await self._refusal(request, state)
        if response is not None:
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except Exception as error:  # noqa: BLE001  (every failure answers with Alpaca's error body)
            await error_response(error)(scope, receive, send)

    async def _refusal(self, request: Request, state: FacadeState) -> Response | None:
        faults = state.faults
        if faults.latency_seconds:
            await asyncio.sleep(faults.latency_seconds)
        if faults.take("hangs"):  # a hung request never reaches the exchange: it changes nothing
            await _hang_until_the_client_leaves(request)
            return _error(504, 50410000, "gateway timeout")
        if faults.take("errors_5xx"):
            return _error(503, 50310000, "service unavailable")
        pair = state.keys.authenticate(request.headers.get(KEY_HEADER), request.headers.get(SECRET_HEADER))
        if pair is None:
            return _error(401, 40110000, "request is not authorized")
        if faults.take("errors_429") or not state.limiter.allow(pair.key_id):
            return _error(429, 42910000, "rate limit exceeded")
        request.scope["facade.account_id"] = state.exchange.open_account(pair.account_id)
        return None
