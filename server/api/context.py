"""What every resolver gets: the request, the process services and per-request loaders."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.types import Info as StrawberryInfo

from server.api.market.loaders import QuoteLoader, quote_loader
from server.services import Services


@dataclass(slots=True)
class Loaders:
    quotes: QuoteLoader


@dataclass(slots=True)
class Context:
    request: Request | WebSocket
    response: Response | None
    services: Services
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(quotes=quote_loader(self.services.quote_source))


Info = StrawberryInfo[Context, None]
