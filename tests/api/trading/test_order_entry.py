"""Order entry end to end: idempotency by clientOrderId (also racing), every validation
rule (nothing reaches the broker), and the risk checks (refusals are recorded)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from server.users.admin import RiskLimits
from server.users.audit import Actor
from tests.utils.trading import LiveTrader, codes, orders_at_the_exchange

pytestmark = pytest.mark.anyio

ALL_ORDERS = "{ orders(status: ALL, first: 500) { nodes { id status rejectCode clientOrderId } } }"
SYSTEM = Actor(None, None)


async def test_the_same_client_order_id_returns_the_first_order(trader: LiveTrader) -> None:
    first = await trader.place(symbol="AAPL", side="BUY", qty="1", clientOrderId="retry-1")
    again = await trader.place(symbol="AAPL", side="BUY", qty="1", clientOrderId="retry-1")

    assert again == first
    assert len(orders_at_the_exchange(trader.services)) == 1


async def test_an_order_answers_as_the_ledger_reads_it_back(trader: LiveTrader) -> None:
    """Money written with trailing zeros (a price of 1.50, an average of 230.0400) is answered as
    the database gives it back, so the answer to placing an order and a later read agree."""
    bid = trader.services.exchange.quote("KO").bid_price
    low = f"{(bid * Decimal('0.95')).quantize(Decimal('0.1'))}0"  # inside the price band; two places, the second a zero
    resting = await trader.place(symbol="KO", side="BUY", type="LIMIT", qty="1.0", limitPrice=low, timeInForce="GTC")
    filled = await trader.place(symbol="AAPL", side="BUY", qty="3")
    for placed in (resting, filled):
        assert placed["userErrors"] == []
        assert await trader.order(placed["order"]["id"]) == placed["order"]


async def test_racing_retries_make_one_order(trader: LiveTrader) -> None:
    order = {"symbol": "MSFT", "side": "BUY", "qty": "1", "clientOrderId": "race-1"}
    payloads = await asyncio.gather(*(trader.place(**order) for _ in range(8)))

    assert {p["order"]["id"] for p in payloads} == {payloads[0]["order"]["id"]}
    assert all(p["userErrors"] == [] for p in payloads)
    assert len(orders_at_the_exchange(trader.services)) == 1
    assert len((await trader.run(ALL_ORDERS))["orders"]["nodes"]) == 1


async def test_a_reused_client_order_id_with_other_terms_is_refused_and_shows_the_first(trader: LiveTrader) -> None:
    first = await trader.place(symbol="AAPL", side="BUY", qty="1", clientOrderId="mine")
    other = await trader.place(symbol="AAPL", side="BUY", qty="2", clientOrderId="mine")

    assert codes(other) == ["CLIENT_ORDER_ID_REUSED"]
    assert other["userErrors"][0]["field"] == ["input", "clientOrderId"]
    assert other["order"]["id"] == first["order"]["id"]
    assert other["order"]["qty"] == "1"
    assert len(orders_at_the_exchange(trader.services)) == 1


# (name, input changes from a valid market buy of 1 AAPL, [(code, field path)])
INVALID = [
    ("malformed symbol", {"symbol": "not a symbol"}, [("INVALID_SYMBOL", "symbol")]),
    ("unknown symbol", {"symbol": "ZZZZ"}, [("UNKNOWN_SYMBOL", "symbol")]),
    ("impossible option date", {"symbol": "AAPL261318C00230000"}, [("INVALID_SYMBOL", "symbol")]),
    ("expired option", {"symbol": "AAPL251219C00230000"}, [("OPTION_EXPIRED", "symbol")]),
    ("zero qty", {"qty": "0"}, [("NOT_POSITIVE", "qty")]),
    ("negative qty", {"qty": "-3"}, [("NOT_POSITIVE", "qty")]),
    ("qty and notional", {"notional": "100"}, [("QTY_OR_NOTIONAL", "qty")]),
    ("neither qty nor notional", {"qty": None}, [("QTY_OR_NOTIONAL", "qty")]),
    ("too large", {"qty": "2000000000"}, [("TOO_LARGE", "qty")]),
    ("too precise", {"qty": "0.0000000001"}, [("TOO_PRECISE", "qty")]),
    (
        "fractional limit",
        {"qty": "1.5", "type": "LIMIT", "limitPrice": "200"},
        [("FRACTIONAL_MARKET_DAY_ONLY", "type")],
    ),
    ("fractional gtc", {"qty": "1.5", "timeInForce": "GTC"}, [("FRACTIONAL_MARKET_DAY_ONLY", "type")]),
    ("limit without price", {"type": "LIMIT"}, [("LIMIT_PRICE_REQUIRED", "limitPrice")]),
    ("market with limit price", {"limitPrice": "200"}, [("LIMIT_PRICE_NOT_ALLOWED", "limitPrice")]),
    ("stop without stop price", {"type": "STOP"}, [("STOP_PRICE_REQUIRED", "stopPrice")]),
    (
        "limit with stop price",
        {"type": "LIMIT", "limitPrice": "230", "stopPrice": "231"},
        [("STOP_PRICE_NOT_ALLOWED", "stopPrice")],
    ),
    ("trailing without trail", {"type": "TRAILING_STOP"}, [("TRAIL_REQUIRED", "trailPrice")]),
    ("trail on a market order", {"trailPrice": "1"}, [("TRAIL_NOT_ALLOWED", "trailPrice")]),
    (
        "stop with ioc",
        {"type": "STOP", "stopPrice": "240", "timeInForce": "IOC"},
        [("TIME_IN_FORCE_NOT_ALLOWED", "timeInForce")],
    ),
    (
        "trailing with fok",
        {"type": "TRAILING_STOP", "trailPercent": "1", "timeInForce": "FOK"},
        [("TIME_IN_FORCE_NOT_ALLOWED", "timeInForce")],
    ),
    ("extended hours market", {"extendedHours": True}, [("EXTENDED_HOURS_NOT_ALLOWED", "extendedHours")]),
    ("sub-penny above a dollar", {"type": "LIMIT", "limitPrice": "230.001"}, [("PRICE_TICK", "limitPrice")]),
    ("bracket without legs", {"orderClass": "BRACKET"}, [("LEGS_REQUIRED", "takeProfit")]),
    ("legs on a simple order", {"takeProfit": {"limitPrice": "300"}}, [("LEGS_NOT_ALLOWED", "orderClass")]),
    (
        "bracket legs the wrong way round",
        {"orderClass": "BRACKET", "takeProfit": {"limitPrice": "200"}, "stopLoss": {"stopPrice": "220"}},
        [("BRACKET_PRICES", "takeProfit.limitPrice")],
    ),
    (
        "oco as market",
        {"orderClass": "OCO", "takeProfit": {"limitPrice": "240"}, "stopLoss": {"stopPrice": "220"}},
        [("ORDER_CLASS_TYPE", "type")],
    ),
    (
        "oto with both legs",
        {"orderClass": "OTO", "takeProfit": {"limitPrice": "240"}, "stopLoss": {"stopPrice": "220"}},
        [("LEGS_REQUIRED", "takeProfit")],
    ),
    ("absurd price", {"type": "LIMIT", "limitPrice": "100000000"}, [("TOO_LARGE", "limitPrice")]),
    ("bad client order id", {"clientOrderId": "x" * 129}, [("INVALID_CLIENT_ORDER_ID", "clientOrderId")]),
]


async def test_every_validation_rule_answers_with_its_field_and_nothing_reaches_the_broker(
    trader: LiveTrader,
) -> None:
    for name, change, expected in INVALID:
        order = {"symbol": "AAPL", "side": "BUY", "qty": "1", **change}
        payload = await trader.place(**{k: v for k, v in order.items() if v is not None})
        found = [(e["code"], ".".join(e["field"][1:])) for e in payload["userErrors"]]
        assert found == expected, name
        assert payload["order"] is None, name
    assert orders_at_the_exchange(trader.services) == []
    assert (await trader.run(ALL_ORDERS))["orders"]["nodes"] == []


async def test_an_option_order_must_be_a_whole_day_contract(trader: LiveTrader) -> None:
    chain = (await trader.run('{ optionChain(underlying: "MSFT", type: PUT) { symbol } }'))["optionChain"]
    payload = await trader.place(symbol=chain[0]["symbol"], side="BUY", qty="1.5", timeInForce="GTC")
    assert sorted(codes(payload)) == ["TIME_IN_FORCE_NOT_ALLOWED", "WHOLE_CONTRACTS_ONLY"]


async def _set_limits(trader: LiveTrader, **limits: Decimal) -> None:
    await trader.services.admin.set_risk_limits(trader.user_id, RiskLimits(**limits), SYSTEM)


async def test_risk_refusals_are_recorded_and_a_retry_gets_the_same_answer(trader: LiveTrader) -> None:
    await _set_limits(trader, max_order_notional=Decimal(5000))
    payload = await trader.place(symbol="AAPL", side="BUY", qty="100", clientOrderId="big")
    assert codes(payload) == ["MAX_ORDER_NOTIONAL"]
    assert payload["order"]["status"] == "REJECTED"
    assert payload["order"]["rejectCode"] == "MAX_ORDER_NOTIONAL"

    again = await trader.place(symbol="AAPL", side="BUY", qty="100", clientOrderId="big")
    assert codes(again) == ["MAX_ORDER_NOTIONAL"]
    assert again["order"]["id"] == payload["order"]["id"]
    assert orders_at_the_exchange(trader.services) == []
    [row] = (await trader.run(ALL_ORDERS))["orders"]["nodes"]
    assert (row["status"], row["rejectCode"]) == ("REJECTED", "MAX_ORDER_NOTIONAL")


async def test_buying_power_position_size_and_price_band(trader: LiveTrader) -> None:
    assert codes(await trader.place(symbol="SPY", side="BUY", qty="400")) == ["INSUFFICIENT_BUYING_POWER"]

    await _set_limits(trader, max_position_notional=Decimal(3000))
    assert codes(await trader.place(symbol="AAPL", side="BUY", qty="10")) == []
    assert codes(await trader.place(symbol="AAPL", side="BUY", qty="5")) == ["MAX_POSITION"]
    assert codes(await trader.place(symbol="AAPL", side="SELL", qty="5")) == []  # reducing is always allowed

    far = await trader.place(symbol="AAPL", side="BUY", type="LIMIT", qty="1", limitPrice="150")
    assert codes(far) == ["PRICE_BAND"]
    assert far["userErrors"][0]["field"] == ["input", "limitPrice"]
    await _set_limits(trader, price_band_percent=Decimal(50))
    assert codes(await trader.place(symbol="AAPL", side="BUY", type="LIMIT", qty="1", limitPrice="150")) == []


async def test_the_kill_switch_blocks_new_orders_but_not_closing(trader: LiveTrader) -> None:
    await trader.place(symbol="KO", side="BUY", qty="10")
    await trader.services.admin.set_kill_switch(trader.user_id, True, SYSTEM)

    assert codes(await trader.place(symbol="KO", side="BUY", qty="1")) == ["KILL_SWITCH"]
    close = 'mutation { closePosition(symbol: "KO") { order { status qty } userErrors { code } } }'
    assert (await trader.run(close))["closePosition"] == {"order": {"status": "FILLED", "qty": "10"}, "userErrors": []}


async def test_a_broker_refusal_is_recorded_with_the_brokers_reason(trader: LiveTrader) -> None:
    payload = await trader.place(symbol="AAPL", side="BUY", qty="1", timeInForce="OPG")
    assert codes(payload) == ["BROKER_REJECTED"]
    assert "opg" in payload["userErrors"][0]["message"]
    assert payload["order"]["status"] == "REJECTED"
    assert payload["order"]["rejectCode"] == "BROKER_REJECTED"
