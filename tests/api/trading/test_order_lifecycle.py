"""Every order type through its life, end to end: gql over a real uvicorn server, the
paper exchange's clock stepped by the test, the ledger read back through the API."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.utils.trading import CANCEL, ORDER_FIELDS, REPLACE, LiveTrader, accepted, codes

pytestmark = pytest.mark.anyio

ACCOUNT = "{ account { cash buyingPower equity } }"
POSITIONS = (
    "{ positions { symbol qty side avgEntryPrice marketValue unrealizedPl multiplier quote { symbol bidPrice } } }"
)
LEGS = f"query($id: ID!) {{ order(id: $id) {{ {ORDER_FIELDS} legs {{ {ORDER_FIELDS} parentOrderId }} }} }}"
EVENTS = "query($id: ID!) { order(id: $id) { events { event status qty price filledQty } } }"
ENDED = {"FILLED", "CANCELED", "EXPIRED", "REPLACED", "REJECTED"}


async def _quote(trader: LiveTrader, symbol: str) -> tuple[Decimal, Decimal]:
    quote = (await trader.run("query($s: String!) { quote(symbol: $s) { bidPrice askPrice } }", s=symbol))["quote"]
    return Decimal(quote["bidPrice"]), Decimal(quote["askPrice"])


async def _buy_shares(trader: LiveTrader, symbol: str, qty: str) -> dict:
    placed = await trader.place(symbol=symbol, side="BUY", qty=qty)
    accepted(placed, "FILLED")
    return placed["order"]


async def test_a_market_order_fills_and_the_ledger_and_account_show_it(trader: LiveTrader) -> None:
    cash_before = Decimal((await trader.run(ACCOUNT))["account"]["cash"])
    order = await _buy_shares(trader, "AAPL", "5")

    assert order["brokerOrderId"]
    assert order["clientOrderId"].startswith("gql-")
    assert (order["filledQty"], order["side"], order["type"]) == ("5", "BUY", "MARKET")
    cost = Decimal(order["filledQty"]) * Decimal(order["filledAvgPrice"])
    assert Decimal((await trader.run(ACCOUNT))["account"]["cash"]) == cash_before - cost
    await trader.settle()
    events = (await trader.run(EVENTS, id=order["id"]))["order"]["events"]
    assert [e["event"] for e in events] == ["created", "new", "fill"]
    assert events[-1]["qty"] == "5"
    assert events[-1]["filledQty"] == "5"
    [position] = (await trader.run(POSITIONS))["positions"]
    assert (position["symbol"], position["qty"], position["side"]) == ("AAPL", "5", "LONG")
    assert position["quote"]["symbol"] == "AAPL"


async def test_a_resting_limit_order_is_replaced_then_the_replacement_fills(trader: LiveTrader) -> None:
    bid, ask = await _quote(trader, "MSFT")
    low = (bid * Decimal("0.97")).quantize(Decimal("0.01"))
    placed = await trader.place(
        symbol="MSFT", side="BUY", type="LIMIT", qty="2", limitPrice=str(low), timeInForce="GTC"
    )
    assert placed["order"]["status"] == "NEW", placed

    replaced = (await trader.run(REPLACE, id=placed["order"]["id"], input={"limitPrice": str(ask + Decimal("0.50"))}))[
        "replaceOrder"
    ]
    assert replaced["userErrors"] == []
    new = replaced["order"]
    assert new["status"] == "FILLED"
    assert new["replacesOrderId"] == placed["order"]["id"]
    assert new["timeInForce"] == "GTC"
    assert new["qty"] == "2"
    assert (await trader.order(placed["order"]["id"]))["status"] == "REPLACED"


async def test_a_resting_order_is_canceled_once(trader: LiveTrader) -> None:
    bid, _ = await _quote(trader, "AMZN")
    placed = await trader.place(
        symbol="AMZN",
        side="BUY",
        type="LIMIT",
        qty="1",
        limitPrice=str((bid * Decimal("0.95")).quantize(Decimal("0.01"))),
    )
    order_id = placed["order"]["id"]

    canceled = (await trader.run(CANCEL, id=order_id))["cancelOrder"]
    assert canceled["userErrors"] == []
    assert canceled["order"]["status"] == "CANCELED"
    again = (await trader.run(CANCEL, id=order_id))["cancelOrder"]
    assert codes(again) == ["NOT_CANCELABLE"]
    assert again["order"]["status"] == "CANCELED"
    unknown = (await trader.run(CANCEL, id="00000000-0000-0000-0000-000000000000"))["cancelOrder"]
    assert codes(unknown) == ["ORDER_NOT_FOUND"]
    assert unknown["order"] is None


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("STOP", lambda bid: {"stopPrice": str((bid * Decimal("0.999")).quantize(Decimal("0.01")))}),
        (
            "STOP_LIMIT",
            lambda bid: {
                "stopPrice": str((bid * Decimal("0.999")).quantize(Decimal("0.01"))),
                "limitPrice": str((bid * Decimal("0.99")).quantize(Decimal("0.01"))),
            },
        ),
        ("TRAILING_STOP", lambda bid: {"trailPercent": "0.1"}),
    ],
)
async def test_protective_sell_orders_trigger_and_fill_as_the_price_moves(
    trader: LiveTrader, kind: str, extra: object
) -> None:
    await _buy_shares(trader, "NVDA", "10")
    bid, _ = await _quote(trader, "NVDA")
    placed = await trader.place(symbol="NVDA", side="SELL", type=kind, qty="10", timeInForce="GTC", **extra(bid))  # type: ignore[operator]
    accepted(placed, "NEW")

    filled = await trader.step_until_status(placed["order"]["id"], ENDED, limit=3600)
    assert filled["status"] == "FILLED"
    assert filled["filledQty"] == "10"
    assert (await trader.run(POSITIONS))["positions"] == []


async def test_a_bracket_order_exits_through_one_leg_and_cancels_the_other(trader: LiveTrader) -> None:
    _, ask = await _quote(trader, "TSLA")
    placed = await trader.place(
        symbol="TSLA",
        side="BUY",
        qty="3",
        orderClass="BRACKET",
        takeProfit={"limitPrice": str((ask * Decimal("1.002")).quantize(Decimal("0.01")))},
        stopLoss={"stopPrice": str((ask * Decimal("0.998")).quantize(Decimal("0.01")))},
    )
    accepted(placed, "FILLED")
    parent = placed["order"]["id"]

    for _ in range(3600):
        trader.step()
        await trader.settle()
        legs = (await trader.run(LEGS, id=parent))["order"]["legs"]
        if any(leg["status"] == "FILLED" for leg in legs):
            break
    trader.step(times=2)
    await trader.settle()
    legs = (await trader.run(LEGS, id=parent))["order"]["legs"]
    assert sorted(leg["status"] for leg in legs) == ["CANCELED", "FILLED"]
    assert {leg["parentOrderId"] for leg in legs} == {parent}
    assert {leg["type"] for leg in legs} == {"LIMIT", "STOP"}
    assert (await trader.run(POSITIONS))["positions"] == []


async def test_an_oco_exit_and_an_oto_entry(trader: LiveTrader) -> None:
    await _buy_shares(trader, "META", "4")
    bid, ask = await _quote(trader, "META")
    oco = await trader.place(
        symbol="META",
        side="SELL",
        type="LIMIT",
        qty="4",
        limitPrice=str((ask * Decimal("1.05")).quantize(Decimal("0.01"))),
        timeInForce="GTC",
        orderClass="OCO",
        takeProfit={"limitPrice": str((ask * Decimal("1.05")).quantize(Decimal("0.01")))},
        stopLoss={"stopPrice": str((bid * Decimal("0.95")).quantize(Decimal("0.01")))},
    )
    assert accepted(oco)["orderClass"] == "OCO"
    await trader.settle()
    legs = (await trader.run(LEGS, id=oco["order"]["id"]))["order"]["legs"]
    assert [leg["type"] for leg in legs] == ["STOP"]
    assert legs[0]["status"] == "NEW"

    oto = await trader.place(
        symbol="AMD",
        side="BUY",
        qty="2",
        orderClass="OTO",
        stopLoss={"stopPrice": str(((await _quote(trader, "AMD"))[0] * Decimal("0.9")).quantize(Decimal("0.01")))},
    )
    accepted(oto, "FILLED")
    await trader.settle()
    [leg] = (await trader.run(LEGS, id=oto["order"]["id"]))["order"]["legs"]
    assert (leg["side"], leg["type"], leg["status"], leg["qty"]) == ("SELL", "STOP", "NEW", "2")


async def test_notional_and_option_orders(trader: LiveTrader) -> None:
    notional = await trader.place(symbol="SPY", side="BUY", notional="1000")
    accepted(notional, "FILLED")
    filled = Decimal(notional["order"]["filledQty"])
    assert filled != filled.to_integral()
    assert abs(filled * Decimal(notional["order"]["filledAvgPrice"]) - 1000) < 1

    chain = (
        await trader.run(
            'query { optionChain(underlying: "AAPL", type: CALL) { symbol strike expiration multiplier '
            "greeks { delta } quote { askPrice } } }"
        )
    )["optionChain"]
    contract = chain[len(chain) // 2]
    assert contract["multiplier"] == 100
    assert 0 < contract["greeks"]["delta"] < 1
    option = await trader.place(symbol=contract["symbol"], side="BUY", qty="1")
    assert accepted(option)["assetClass"] == "US_OPTION"
    positions = {p["symbol"]: p for p in (await trader.run(POSITIONS))["positions"]}
    assert positions[contract["symbol"]]["multiplier"] == 100


async def test_positions_close_in_part_and_in_full(trader: LiveTrader) -> None:
    await _buy_shares(trader, "GOOGL", "10")
    await _buy_shares(trader, "NFLX", "3")
    close = """mutation($s: String!, $p: Decimal) {
      closePosition(symbol: $s, percentage: $p) { order { side qty status } userErrors { code field } }
    }"""
    half = (await trader.run(close, s="GOOGL", p="50"))["closePosition"]
    assert half["order"] == {"side": "SELL", "qty": "5", "status": "FILLED"}
    none = (await trader.run(close, s="ORCL", p=None))["closePosition"]
    assert codes(none) == ["NO_POSITION"]
    one = (await trader.run('{ position(symbol: "googl") { qty side } }'))["position"]
    assert one == {"qty": "5", "side": "LONG"}
    bid, _ = await _quote(trader, "NFLX")
    resting = await trader.place(
        symbol="NFLX",
        side="BUY",
        type="LIMIT",
        qty="1",
        limitPrice=str((bid * Decimal("0.95")).quantize(Decimal("0.01"))),
    )
    accepted(resting, "NEW")

    everything = (
        await trader.run(
            "mutation { closeAllPositions(cancelOrders: true) { orders { symbol status } userErrors { code } } }"
        )
    )["closeAllPositions"]
    assert sorted((o["symbol"], o["status"]) for o in everything["orders"]) == [
        ("GOOGL", "FILLED"),
        ("NFLX", "CANCELED"),
        ("NFLX", "FILLED"),
    ]
    assert (await trader.run(POSITIONS))["positions"] == []


async def test_cancel_all_and_sync(trader: LiveTrader) -> None:
    bid, _ = await _quote(trader, "KO")
    low = str((bid * Decimal("0.95")).quantize(Decimal("0.01")))
    for _ in range(3):
        await trader.place(symbol="KO", side="BUY", type="LIMIT", qty="1", limitPrice=low)
    synced = (await trader.run("mutation { syncOrders { checked updated } }"))["syncOrders"]
    assert synced == {"checked": 3, "updated": 0}

    result = (await trader.run("mutation { cancelAllOrders { orders { status } userErrors { code } } }"))[
        "cancelAllOrders"
    ]
    assert [o["status"] for o in result["orders"]] == ["CANCELED"] * 3
    open_orders = (await trader.run("{ orders { nodes { id } } }"))["orders"]["nodes"]
    assert open_orders == []
