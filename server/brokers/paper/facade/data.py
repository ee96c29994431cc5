"""Alpaca's market data REST API over the paper market: /v2/stocks and /v1beta1/options."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.brokers.domain import Bar, OptionType
from server.brokers.paper.facade import wire
from server.brokers.paper.facade.http import FacadeError, exchange_of, parse_time, whole_number
from server.brokers.paper.market import aggregate

MAX_SYMBOLS = 1000
MAX_BARS_PAGE = 10000
DEFAULT_BARS_PAGE = 1000
TIMEFRAMES = {
    "1Min": timedelta(minutes=1),
    "5Min": timedelta(minutes=5),
    "15Min": timedelta(minutes=15),
    "30Min": timedelta(minutes=30),
    "1Hour": timedelta(hours=1),
    "1Day": timedelta(days=1),
}
_TIMEFRAME_ALIASES = {"1T": "1Min", "5T": "5Min", "15T": "15Min", "30T": "30Min", "1H": "1Hour", "1D": "1Day"}


def _symbols(request: Request, *, required: bool = True) -> list[str]:
    symbols = [s.strip().upper() for s in request.query_params.get("symbols", "").split(",") if s.strip()]
    if required and not symbols:
        raise FacadeError(400, 40010000, "symbols is required")
    if len(symbols) > MAX_SYMBOLS:
        raise FacadeError(400, 40010000, f"too many symbols (at most {MAX_SYMBOLS})")
    return list(dict.fromkeys(symbols))


def _known_stocks(request: Request) -> list[str]:
    market = exchange_of(request).market
    return [s for s in _symbols(request) if market.has_symbol(s)]


def _feed(request: Request, allowed: set[str]) -> None:
    feed = request.query_params.get("feed")
    if feed is not None and feed not in allowed:
        raise FacadeError(400, 40010000, f"invalid feed {feed!r}")


async def latest_quotes(request: Request) -> Response:
    _feed(request, {"iex", "sip", "delayed_sip", "otc", "boats", "overnight"})
    exchange = exchange_of(request)
    return JSONResponse({"quotes": {s: wire.quote(exchange.quote(s)) for s in _known_stocks(request)}})


async def latest_trades(request: Request) -> Response:
    _feed(request, {"iex", "sip", "delayed_sip", "otc", "boats", "overnight"})
    market = exchange_of(request).market
    trades = {s: market.latest_trade(s) for s in _known_stocks(request)}
    return JSONResponse({"trades": {s: wire.trade(t) for s, t in trades.items() if t is not None}})


async def latest_bars(request: Request) -> Response:
    market = exchange_of(request).market
    bars = {s: market.minute_bars(s) for s in _known_stocks(request)}
    return JSONResponse({"bars": {s: wire.bar(b[-1]) for s, b in bars.items() if b}})


def _bars_for(request: Request, symbol: str, period: timedelta) -> list[Bar]:
    market = exchange_of(request).market
    if period >= timedelta(days=1):
        return market.daily_bars(symbol)
    minutes = market.minute_bars(symbol)
    return minutes if period == timedelta(minutes=1) else aggregate(minutes, period)


async def historical_bars(request: Request) -> Response:
    params = request.query_params
    timeframe = _TIMEFRAME_ALIASES.get(params.get("timeframe", ""), params.get("timeframe", ""))
    period = TIMEFRAMES.get(timeframe)
    if period is None:
        raise FacadeError(400, 40010000, f"invalid timeframe (one of {', '.join(TIMEFRAMES)})")
    start = parse_time(params.get("start"), "start", status=400)
    end = parse_time(params.get("end"), "end", status=400)
    limit_text = params.get("limit")
    limit = max(1, min(whole_number(limit_text) or DEFAULT_BARS_PAGE, MAX_BARS_PAGE))
    skip = whole_number(params.get("page_token")) or 0
    descending = params.get("sort") == "desc"
    rows: list[tuple[str, Bar]] = []
    for symbol in _known_stocks(request):
        bars = [
            b
            for b in _bars_for(request, symbol, period)
            if (start is None or b.timestamp >= start) and (end is None or b.timestamp <= end)
        ]
        rows.extend((symbol, bar) for bar in (reversed(bars) if descending else bars))
    page = rows[skip : skip + limit]
    grouped: dict[str, list[dict[str, Any]]] = {}
    for symbol, bar in page:
        grouped.setdefault(symbol, []).append(wire.bar(bar))
    next_token = str(skip + limit) if skip + limit < len(rows) else None
    return JSONResponse({"bars": grouped, "next_page_token": next_token})


def _stock_snapshot(request: Request, symbol: str) -> dict[str, Any]:
    exchange = exchange_of(request)
    market = exchange.market
    minutes, days = market.minute_bars(symbol), market.daily_bars(symbol)
    trade = market.latest_trade(symbol)
    return {
        "latestTrade": wire.trade(trade) if trade else None,
        "latestQuote": wire.quote(exchange.quote(symbol)),
        "minuteBar": wire.bar(minutes[-1]) if minutes else None,
        "dailyBar": wire.bar(days[-1]) if days else None,
        "prevDailyBar": wire.bar(days[-2]) if len(days) > 1 else None,
    }


async def stock_snapshots(request: Request) -> Response:
    return JSONResponse({s: _stock_snapshot(request, s) for s in _known_stocks(request)})


async def stock_snapshot(request: Request) -> Response:
    symbol = request.path_params["symbol"].upper()
    if not exchange_of(request).market.has_symbol(symbol):
        raise FacadeError(404, 40410000, f"unknown symbol {symbol}")
    return JSONResponse({"symbol": symbol, **_stock_snapshot(request, symbol)})


# ----- options -----------------------------------------------------------------------


def _known_contracts(request: Request) -> list[str]:
    instruments = exchange_of(request).instruments
    return [s for s in _symbols(request) if instruments.contract(s) is not None]


async def option_latest_quotes(request: Request) -> Response:
    _feed(request, {"indicative", "opra"})
    exchange = exchange_of(request)
    return JSONResponse({"quotes": {s: wire.quote(exchange.quote(s)) for s in _known_contracts(request)}})


async def option_latest_trades(request: Request) -> Response:
    _feed(request, {"indicative", "opra"})
    # The paper market prints no option trades: an empty answer, as Alpaca gives for unquoted contracts.
    _known_contracts(request)
    return JSONResponse({"trades": {}})


def _option_snapshot(request: Request, symbol: str) -> dict[str, Any]:
    exchange = exchange_of(request)
    contract = exchange.instruments.contract(symbol)
    assert contract is not None
    volatility, greeks = exchange.instruments.greeks(contract, exchange.now())
    return {
        "latestQuote": wire.quote(exchange.quote(symbol)),
        "impliedVolatility": round(volatility, 6),
        "greeks": {
            "delta": round(greeks.delta, 6),
            "gamma": round(greeks.gamma, 6),
            "rho": round(greeks.rho, 6),
            "theta": round(greeks.theta, 6),
            "vega": round(greeks.vega, 6),
        },
    }


async def option_snapshots(request: Request) -> Response:
    _feed(request, {"indicative", "opra"})
    return JSONResponse(
        {"snapshots": {s: _option_snapshot(request, s) for s in _known_contracts(request)}, "next_page_token": None}
    )


async def option_chain(request: Request) -> Response:
    _feed(request, {"indicative", "opra"})
    exchange = exchange_of(request)
    underlying = request.path_params["underlying"].upper()
    if not exchange.market.has_symbol(underlying):
        raise FacadeError(404, 40410000, f"unknown underlying {underlying}")
    params = request.query_params
    option_type = None
    if params.get("type"):
        try:
            option_type = OptionType(params["type"])
        except ValueError:
            raise FacadeError(400, 40010000, "invalid type") from None
    contracts = exchange.instruments.chain(underlying, option_type=option_type)
    exact = params.get("expiration_date")
    if exact:
        contracts = [c for c in contracts if c.expiration.isoformat() == exact]
    limit = min(whole_number(params.get("limit")) or 100, 1000)
    skip = whole_number(params.get("page_token")) or 0
    page = contracts[skip : skip + limit]
    return JSONResponse(
        {
            "snapshots": {c.symbol: _option_snapshot(request, c.symbol) for c in page},
            "next_page_token": str(skip + limit) if skip + limit < len(contracts) else None,
        }
    )


routes = [
    Route("/v2/stocks/quotes/latest", latest_quotes),
    Route("/v2/stocks/trades/latest", latest_trades),
    Route("/v2/stocks/bars/latest", latest_bars),
    Route("/v2/stocks/bars", historical_bars),
    Route("/v2/stocks/snapshots", stock_snapshots),
    Route("/v2/stocks/{symbol}/snapshot", stock_snapshot),
    Route("/v1beta1/options/quotes/latest", option_latest_quotes),
    Route("/v1beta1/options/trades/latest", option_latest_trades),
    Route("/v1beta1/options/snapshots", option_snapshots),
    Route("/v1beta1/options/snapshots/{underlying}", option_chain),
]
