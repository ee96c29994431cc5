"""The real app plus one plain Starlette route serving the same quote: the baseline of `bench.http_quotes`.

Serve it: `python -m bench.plain_route [--port 0]` (settings from the environment, uvicorn
configured by the same `run_uvicorn` as `python -m server serve`), or
`uvicorn --factory bench.plain_route:app_with_plain_route`. `/plain/quote?symbol=AAPL`
answers the JSON the GraphQL `quote` field answers for these fields, from the same quote
source of the same services, through the same middleware: what it lacks is GraphQL
alone. The route lives here so that the production app carries no benchmark route.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.__main__ import run_uvicorn
from server.api.errors import ApiError
from server.api.market.symbols import normalize_symbol
from server.api.scalars import serialize_decimal
from server.app import create_app
from server.brokers.base import UnknownSymbolError
from server.log import configure_logging
from server.security.secrets import ServerSecrets, resolve_secrets
from server.services import Services
from server.settings import Settings
from tests.utils.processes import ServerProcess, run_server

PATH = "/plain/quote"
FIELDS = ("symbol", "bidPrice", "askPrice", "bidSize", "askSize", "timestamp")
REPOSITORY = Path(__file__).resolve().parent.parent


async def plain_quote(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    try:
        symbol = normalize_symbol(request.query_params.get("symbol", ""))
        quote = (await services.quote_source.get_quotes([symbol]))[symbol]
    except ApiError as error:
        return JSONResponse({"error": {"code": error.code.value, "message": error.message}}, status_code=400)
    except UnknownSymbolError as error:
        return JSONResponse({"error": {"code": "BAD_USER_INPUT", "message": str(error)}}, status_code=400)
    return JSONResponse(
        {
            "symbol": quote.symbol,
            "bidPrice": serialize_decimal(quote.bid_price),
            "askPrice": serialize_decimal(quote.ask_price),
            "bidSize": serialize_decimal(quote.bid_size),
            "askSize": serialize_decimal(quote.ask_size),
            "timestamp": quote.timestamp.isoformat(),
        }
    )


def with_plain_route(settings: Settings, secrets: ServerSecrets | None = None) -> Starlette:
    app = create_app(settings, secrets=secrets)
    app.router.routes.append(Route(PATH, plain_quote, methods=["GET"]))
    return app


def app_with_plain_route() -> Starlette:
    """Factory for `uvicorn --factory bench.plain_route:app_with_plain_route`."""
    settings = Settings()
    configure_logging(settings.log_level)
    return with_plain_route(settings)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plain_route", description=__doc__.split("\n")[0])
    parser.add_argument("--host", help="interface to bind (default: HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default: PORT or 8081; 0 picks a free one)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    settings = Settings(**overrides)
    configure_logging(settings.log_level)
    run_uvicorn(with_plain_route(settings, resolve_secrets(settings)), settings.host, settings.port)
    return 0


@contextmanager
def running(env: dict[str, str]) -> Iterator[ServerProcess]:
    """`python -m bench.plain_route --port 0` as its own process, from the repository so that
    `bench` imports; DATA_DIR belongs in `env`."""
    with run_server(REPOSITORY, ("--port", "0"), env, module="bench.plain_route") as server:
        yield server


if __name__ == "__main__":
    sys.exit(main())
