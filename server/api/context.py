"""What every resolver gets: the request, the process services and per-operation loaders."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.types import Info as StrawberryInfo

from server.api.identity import ANONYMOUS, Authentication
from server.api.market.loaders import QuoteLoaders, quote_loader
from server.api.trading.loaders import EventsLoader, LegsLoader, events_loader, legs_loader
from server.api.users.loaders import UserLoader, user_loader
from server.services import Services
from server.users.audit import Actor


@dataclass(frozen=True, slots=True)
class Loaders:
    quotes: QuoteLoaders
    users: UserLoader
    order_legs: LegsLoader
    order_events: EventsLoader


# Each operation runs in its own task, so a context variable keeps concurrent operations
# on one WebSocket connection from sharing (or swapping) each other's loaders.
_operation_loaders: ContextVar[Loaders | None] = ContextVar("operation_loaders", default=None)


@dataclass(slots=True)
class Context:
    request: Request | WebSocket | None
    response: Response | None
    services: Services
    auth: Authentication = ANONYMOUS
    client_ip: str | None = None
    # Set by Strawberry from a WebSocket's connection_init payload.
    connection_params: dict[str, Any] | None = field(default=None)

    @property
    def actor(self) -> Actor:
        claims = self.auth.claims
        return Actor(self.client_ip, claims.user_id if claims else None)

    @property
    def loaders(self) -> Loaders:
        loaders = _operation_loaders.get()
        if loaders is None:
            raise RuntimeError("loaders are made per operation by the OperationLoaders extension")
        return loaders


@contextmanager
def fresh_loaders(context: Context) -> Iterator[Loaders]:
    services = context.services
    loaders = Loaders(
        quotes=quote_loader(services.quote_source),
        users=user_loader(services.read_sessions),
        order_legs=legs_loader(services.history),
        order_events=events_loader(services.history),
    )
    token = _operation_loaders.set(loaders)
    try:
        yield loaders
    finally:
        _operation_loaders.reset(token)


Info = StrawberryInfo[Context, None]
