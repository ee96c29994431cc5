"""Alpaca's trading REST API (/v2) over the paper exchange."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.brokers.base import NotFoundError, OrderRejectedError
from server.brokers.domain import (
    OptionType,
    Order,
    OrderClass,
    OrderRequest,
    OrderSide,
    OrderType,
    ReplaceRequest,
    StopLoss,
    TakeProfit,
    TimeInForce,
)
from server.brokers.paper.exchange import PaperExchange
from server.brokers.paper.facade import wire
from server.brokers.paper.facade.http import (
    FacadeError,
    account_of,
    exchange_of,
    parse_time,
    read_json,
    whole_number,
)
from server.decimals import canonical_decimal

E = TypeVar("E", bound=StrEnum)
MAX_WIRE_NUMBER = Decimal(10) ** 15  # no quantity or price on this exchange comes near it
MAX_ORDERS_PAGE = 500
DEFAULT_ORDERS_PAGE = 50
MAX_CONTRACTS_PAGE = 10000
DEFAULT_CONTRACTS_PAGE = 100


def _decimal(value: object, name: str) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FacadeError(422, 42210000, f"invalid {name}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise FacadeError(422, 42210000, f"invalid {name}") from None
    if not number.is_finite() or abs(number) >= MAX_WIRE_NUMBER:
        raise FacadeError(422, 42210000, f"invalid {name}")
    return canonical_decimal(number)  # alpaca-py sends floats: 10.0 is 10


def _enum(kind: type[E], value: object, name: str, default: E | None = None) -> E:
    if value is None and default is not None:
        return default
    try:
        return kind(value)  # type: ignore[call-arg]
    except ValueError:
        raise FacadeError(422, 42210000, f"invalid {name}") from None


def _order_request(body: dict[str, Any]) -> OrderRequest:
    take_profit = body.get("take_profit")
    stop_loss = body.get("stop_loss")
    if take_profit is not None and not isinstance(take_profit, dict):
        raise FacadeError(422, 42210000, "invalid take_profit")
    if stop_loss is not None and not isinstance(stop_loss, dict):
        raise FacadeError(422, 42210000, "invalid stop_loss")
    symbol = body.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise FacadeError(422, 42210000, "symbol is required")
    client_order_id = body.get("client_order_id")
    if client_order_id is not None and not isinstance(client_order_id, str):
        raise FacadeError(422, 42210000, "invalid client_order_id")
    tp_price = _decimal(take_profit.get("limit_price"), "take_profit.limit_price") if take_profit else None
    sl_price = _decimal(stop_loss.get("stop_price"), "stop_loss.stop_price") if stop_loss else None
    order_class = body.get("order_class") or "simple"
    return OrderRequest(
        symbol=symbol.upper(),
        side=_enum(OrderSide, body.get("side"), "side"),
        type=_enum(OrderType, body.get("type") or body.get("order_type"), "order type"),
        time_in_force=_enum(TimeInForce, body.get("time_in_force"), "time_in_force"),
        qty=_decimal(body.get("qty"), "qty"),
        notional=_decimal(body.get("notional"), "notional"),
        limit_price=_decimal(body.get("limit_price"), "limit_price"),
        stop_price=_decimal(body.get("stop_price"), "stop_price"),
        trail_price=_decimal(body.get("trail_price"), "trail_price"),
        trail_percent=_decimal(body.get("trail_percent"), "trail_percent"),
        extended_hours=bool(body.get("extended_hours", False)),
        client_order_id=client_order_id or None,
        order_class=_enum(OrderClass, order_class, "order_class"),
        take_profit=TakeProfit(tp_price) if tp_price is not None else None,
        stop_loss=StopLoss(sl_price, _decimal(stop_loss.get("limit_price"), "stop_loss.limit_price"))
        if stop_loss and sl_price is not None
        else None,
    )


async def get_account(request: Request) -> Response:
    return JSONResponse(wire.account(exchange_of(request).account(account_of(request))))


async def list_positions(request: Request) -> Response:
    exchange = exchange_of(request)
    return JSONResponse(
        [wire.position(p, _exchange_code(exchange, p.symbol)) for p in exchange.positions(account_of(request))]
    )


def _exchange_code(exchange: PaperExchange, symbol: str) -> str:
    asset = exchange.market.assets.get(symbol)
    return asset.exchange.value if asset else "OTC"


async def get_position(request: Request) -> Response:
    exchange = exchange_of(request)
    symbol = request.path_params["symbol"].upper()
    try:
        position = exchange.position(account_of(request), symbol)
    except NotFoundError:
        raise FacadeError(404, 40410000, "position does not exist") from None
    return JSONResponse(wire.position(position, _exchange_code(exchange, symbol)))


async def close_position(request: Request) -> Response:
    exchange = exchange_of(request)
    params = request.query_params
    try:
        order = exchange.close_position(
            account_of(request),
            request.path_params["symbol"].upper(),
            qty=_decimal(params.get("qty"), "qty"),
            percentage=_decimal(params.get("percentage"), "percentage"),
        )
    except NotFoundError:
        raise FacadeError(404, 40410000, "position does not exist") from None
    return JSONResponse(wire.order(order))


async def close_all_positions(request: Request) -> Response:
    exchange = exchange_of(request)
    account_id = account_of(request)
    if request.query_params.get("cancel_orders", "").lower() == "true":
        exchange.cancel_all(account_id)
    results = []
    for position in exchange.positions(account_id):
        try:
            order = exchange.close_position(account_id, position.symbol)
            results.append({"symbol": position.symbol, "status": 200, "body": wire.order(order)})
        except OrderRejectedError as error:
            results.append(
                {"symbol": position.symbol, "status": error.status, "body": wire.error(error.code, error.message)}
            )
    return JSONResponse(results, status_code=207)


async def submit_order(request: Request) -> Response:
    body = await read_json(request)
    order = exchange_of(request).submit(account_of(request), _order_request(body))
    return JSONResponse(wire.order(order))


def _int(value: str | None, name: str, default: int, maximum: int) -> int:
    if value is None:
        return default
    number = whole_number(value)
    if number is None or not 0 < number <= maximum:
        raise FacadeError(422, 42210000, f"invalid {name}")
    return number


async def list_orders(request: Request) -> Response:
    params = request.query_params
    status = params.get("status", "open")
    if status not in {"open", "closed", "all"}:
        raise FacadeError(422, 42210000, "invalid status")
    limit = _int(params.get("limit"), "limit", DEFAULT_ORDERS_PAGE, MAX_ORDERS_PAGE)
    after = parse_time(params.get("after"), "after", status=422)
    until = parse_time(params.get("until"), "until", status=422)
    direction = params.get("direction", "desc")
    if direction not in {"asc", "desc"}:
        raise FacadeError(422, 42210000, "invalid direction")
    symbols = {s.strip().upper() for s in params.get("symbols", "").split(",") if s.strip()}
    side = params.get("side")
    nested = params.get("nested", "").lower() == "true"

    def wanted(order: Order) -> bool:
        return (
            (status == "all" or (status == "open") == order.status.is_open)
            and (after is None or order.submitted_at > after)
            and (until is None or order.submitted_at < until)
            and (not symbols or order.symbol in symbols)
            and (side is None or order.side.value == side)
        )

    orders = [o for o in exchange_of(request).list_orders(account_of(request), nested=nested) if wanted(o)]
    if direction == "asc":
        orders.reverse()
    return JSONResponse([wire.order(o) for o in orders[:limit]])


async def get_order(request: Request) -> Response:
    order = exchange_of(request).get_order(account_of(request), request.path_params["order_id"])
    return JSONResponse(wire.order(order))


async def get_order_by_client_id(request: Request) -> Response:
    client_order_id = request.query_params.get("client_order_id")
    if not client_order_id:
        raise FacadeError(422, 42210000, "client_order_id is required")
    order = exchange_of(request).get_order_by_client_id(account_of(request), client_order_id)
    return JSONResponse(wire.order(order))


async def replace_order(request: Request) -> Response:
    body = await read_json(request)
    tif = body.get("time_in_force")
    change = ReplaceRequest(
        qty=_decimal(body.get("qty"), "qty"),
        time_in_force=_enum(TimeInForce, tif, "time_in_force") if tif else None,
        limit_price=_decimal(body.get("limit_price"), "limit_price"),
        stop_price=_decimal(body.get("stop_price"), "stop_price"),
        trail=_decimal(body.get("trail"), "trail"),
        client_order_id=body.get("client_order_id") if isinstance(body.get("client_order_id"), str) else None,
    )
    order = exchange_of(request).replace(account_of(request), request.path_params["order_id"], change)
    return JSONResponse(wire.order(order))


async def cancel_order(request: Request) -> Response:
    exchange_of(request).cancel(account_of(request), request.path_params["order_id"])
    return Response(status_code=204)


async def cancel_all_orders(request: Request) -> Response:
    canceled = exchange_of(request).cancel_all(account_of(request))
    return JSONResponse([{"id": o.id, "status": 200, "body": wire.order(o)} for o in canceled], status_code=207)


async def get_clock(request: Request) -> Response:
    return JSONResponse(wire.clock(exchange_of(request).clock()))


async def list_assets(request: Request) -> Response:
    asset_class = request.query_params.get("asset_class", "us_equity")
    assets = exchange_of(request).market.assets.values() if asset_class == "us_equity" else []
    return JSONResponse([wire.stock_asset(spec) for spec in assets])


async def get_asset(request: Request) -> Response:
    exchange = exchange_of(request)
    key = request.path_params["symbol"]
    for spec in exchange.market.assets.values():
        if key.upper() == spec.symbol or key == wire.asset_id(spec.symbol):
            return JSONResponse(wire.stock_asset(spec))
    raise FacadeError(404, 40410000, "asset not found")


async def list_option_contracts(request: Request) -> Response:
    exchange = exchange_of(request)
    params = request.query_params
    underlyings = [s.strip().upper() for s in params.get("underlying_symbols", "").split(",") if s.strip()]
    unknown = [s for s in underlyings if s not in exchange.market.assets]
    if unknown:
        raise FacadeError(422, 42210000, f"unknown underlying symbols: {', '.join(unknown)}")
    option_type = _enum(OptionType, params["type"], "type") if params.get("type") else None
    exact = params.get("expiration_date")
    low, high = params.get("expiration_date_gte"), params.get("expiration_date_lte")
    strike_low = _decimal(params.get("strike_price_gte"), "strike_price_gte")
    strike_high = _decimal(params.get("strike_price_lte"), "strike_price_lte")
    limit = _int(params.get("limit"), "limit", DEFAULT_CONTRACTS_PAGE, MAX_CONTRACTS_PAGE)
    offset = _int(params.get("page_token"), "page_token", 0, 10**9) if params.get("page_token") else 0
    contracts = []
    for underlying in underlyings or sorted(exchange.market.assets):
        for contract in exchange.instruments.chain(underlying, option_type=option_type):
            day = contract.expiration.isoformat()
            if (exact and day != exact) or (low and day < low) or (high and day > high):
                continue
            if (strike_low is not None and contract.strike < strike_low) or (
                strike_high is not None and contract.strike > strike_high
            ):
                continue
            contracts.append(contract)
    page = contracts[offset : offset + limit]
    next_token = str(offset + limit) if offset + limit < len(contracts) else None
    today = exchange.instruments.today()
    return JSONResponse(
        {"option_contracts": [wire.option_contract(c, today=today) for c in page], "next_page_token": next_token}
    )


async def get_option_contract(request: Request) -> Response:
    exchange = exchange_of(request)
    key = request.path_params["symbol_or_id"]
    contract = exchange.instruments.contract(key.upper())
    if contract is None:
        raise FacadeError(404, 40410000, "option contract not found")
    return JSONResponse(wire.option_contract(contract, today=exchange.instruments.today()))


routes = [
    Route("/v2/account", get_account),
    Route("/v2/positions", list_positions, methods=["GET"]),
    Route("/v2/positions", close_all_positions, methods=["DELETE"]),
    Route("/v2/positions/{symbol}", get_position, methods=["GET"]),
    Route("/v2/positions/{symbol}", close_position, methods=["DELETE"]),
    Route("/v2/orders", submit_order, methods=["POST"]),
    Route("/v2/orders", list_orders, methods=["GET"]),
    Route("/v2/orders", cancel_all_orders, methods=["DELETE"]),
    Route("/v2/orders:by_client_order_id", get_order_by_client_id),
    Route("/v2/orders/{order_id}", get_order, methods=["GET"]),
    Route("/v2/orders/{order_id}", replace_order, methods=["PATCH"]),
    Route("/v2/orders/{order_id}", cancel_order, methods=["DELETE"]),
    Route("/v2/clock", get_clock),
    Route("/v2/assets", list_assets),
    Route("/v2/assets/{symbol}", get_asset),
    Route("/v2/options/contracts", list_option_contracts),
    Route("/v2/options/contracts/{symbol_or_id}", get_option_contract),
]
