"""`python -m server paper-exchange`: the facade as its own process, on the wall clock."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

from starlette.applications import Starlette

from server.brokers.paper.calendar import MarketHoursMode, make_calendar
from server.brokers.paper.clock import WallClock
from server.brokers.paper.exchange import PaperExchange
from server.brokers.paper.facade.access import KeyStore
from server.brokers.paper.facade.app import create_facade
from server.brokers.paper.market import MarketSimulator
from server.services import run_ticker

DEFAULT_PORT = 8090


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)")
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="KEY_ID:SECRET[:ACCOUNT]",
        help="an API key pair (repeatable); the account defaults to the key id",
    )
    parser.add_argument("--keys-file", type=Path, help='JSON: {"keys": [{"key_id", "secret_key", "account_id"?}]}')
    parser.add_argument("--seed", type=int, default=20261123, help="market seed")
    parser.add_argument("--tick-seconds", type=float, default=1.0, help="market step length")
    parser.add_argument("--market-hours", choices=[m.value for m in MarketHoursMode], default="always")
    parser.add_argument("--starting-cash", type=Decimal, default=Decimal(100000))
    parser.add_argument("--rate-limit", type=int, default=200, help="requests per key per minute")
    parser.add_argument("--fault-token", help="enables POST /_faults for requests carrying X-Fault-Token")


def build_app(args: argparse.Namespace) -> Starlette:
    keys = KeyStore.from_specs(args.key, file=args.keys_file)
    if not list(keys):
        raise SystemExit("paper-exchange needs at least one --key KEY_ID:SECRET or a --keys-file")
    market = MarketSimulator(WallClock(), seed=args.seed, tick_seconds=args.tick_seconds)
    exchange = PaperExchange(
        market, make_calendar(MarketHoursMode(args.market_hours)), starting_cash=args.starting_cash
    )
    app = create_facade(exchange, keys, rate_limit_per_minute=args.rate_limit, fault_token=args.fault_token)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        ticker = asyncio.create_task(run_ticker(exchange, args.tick_seconds))
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    app.router.lifespan_context = lifespan
    return app
