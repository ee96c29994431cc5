"""What every resolver gets: the request, the process services and per-operation loaders."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.types import Info as StrawberryInfo

from server.api.market.loaders import QuoteLoader, quote_loader
from server.services import Services


@dataclass(frozen=True, slots=True)
class Loaders:
    quotes: QuoteLoader


# Each operation runs in its own task, so a context variable keeps concurrent operations
# on one WebSocket connection from sharing (or swapping) each other's loaders.
_operation_loaders: ContextVar[Loaders | None] = ContextVar("operation_loaders", default=None)


@dataclass(slots=True)
class Context:
    request: Request | WebSocket | None
    response: Response | None
    services: Services

    @property
    def loaders(self) -> Loaders:
        loaders = _operation_loaders.get()
        if loaders is None:
            raise RuntimeError("loaders are made per operation by the OperationLoaders extension")
        return loaders


@contextmanager
def fresh_loaders(context: Context) -> Iterator[Loaders]:
    loaders = Loaders(quotes=quote_loader(context.services.quote_source))
    token = _operation_loaders.set(loaders)
    try:
        yield loaders
    finally:
        _operation_loaders.reset(token)


Info = StrawberryInfo[Context, None]
