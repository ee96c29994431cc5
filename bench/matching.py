"""Matching throughput of the paper exchange, in-process on one core.

Run: `.venv/bin/python -m bench.matching` (prints a Markdown table; nothing is asserted).
Three workloads, each a fresh exchange: market orders that fill at once, limit orders
that rest on the book, and a mix where the clock moves and resting orders are worked.
The issue's target: 50,000 submissions a second, here read as every workload with a
trade-update listener attached (as in the server).
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from decimal import Decimal

from bench.report import Report, Table, Target, add_common_options, parse_args
from server.brokers.domain import OrderRequest, OrderSide, OrderType, TimeInForce
from server.brokers.paper.calendar import AlwaysOpenCalendar
from server.brokers.paper.exchange import PaperExchange
from server.brokers.paper.market import MarketSimulator
from tests.utils.factories import make_clock

ORDERS = 20000
ROUNDS = 5
QUICK = {"orders": 1000, "rounds": 1}
SYMBOLS = ["AAPL", "MSFT", "SPY", "QQQ", "KO", "F", "NVDA", "AMD"]
RICH = Decimal(10) ** 12
TARGET_PER_SECOND = 50_000

Workload = Callable[[bool, int], Callable[[], None]]


def _exchange(listening: bool) -> tuple[PaperExchange, str]:
    """A fresh exchange; `listening` attaches a trade-update listener, as the server does."""
    clock = make_clock()
    exchange = PaperExchange(MarketSimulator(clock, seed=1), AlwaysOpenCalendar(), starting_cash=RICH)
    if listening:
        updates: list[object] = []
        exchange.add_listener(lambda _account, update: updates.append(update))
    return exchange, exchange.open_account()


def market_orders(listening: bool, orders: int) -> Callable[[], None]:
    exchange, account = _exchange(listening)
    requests = [
        OrderRequest(SYMBOLS[i % len(SYMBOLS)], OrderSide.BUY if i % 2 == 0 else OrderSide.SELL, qty=Decimal(1))
        for i in range(orders)
    ]
    return lambda: [exchange.submit(account, r) for r in requests] and None


def resting_limits(listening: bool, orders: int) -> Callable[[], None]:
    exchange, account = _exchange(listening)
    requests = [
        OrderRequest(
            SYMBOLS[i % len(SYMBOLS)],
            OrderSide.BUY,
            OrderType.LIMIT,
            TimeInForce.GTC,
            qty=Decimal(1),
            limit_price=Decimal(1) + Decimal(i % 100) / 100,
        )
        for i in range(orders)
    ]
    return lambda: [exchange.submit(account, r) for r in requests] and None


def mixed_with_clock(listening: bool, orders: int) -> Callable[[], None]:
    exchange, account = _exchange(listening)
    clock = exchange.market.clock

    def run() -> None:
        for i in range(orders):
            symbol = SYMBOLS[i % len(SYMBOLS)]
            if i % 4 == 0:
                price = exchange.quote(symbol).bid_price
                exchange.submit(
                    account,
                    OrderRequest(
                        symbol, OrderSide.BUY, OrderType.LIMIT, TimeInForce.GTC, qty=Decimal(1), limit_price=price
                    ),
                )
            else:
                exchange.submit(account, OrderRequest(symbol, OrderSide.BUY, qty=Decimal(1)))
            if i % 100 == 0:
                clock.advance(1)  # type: ignore[attr-defined]

    return run


WORKLOADS: list[tuple[str, Workload]] = [
    ("market orders, filled on arrival", market_orders),
    ("limit orders resting on the book", resting_limits),
    ("mixed, clock moving, resting orders worked", mixed_with_clock),
]
# For --once: one workload run once and untimed, for an outside counter such as cachegrind
# (bench/notes/matching.md shows how).
BY_SHORT_NAME: dict[str, Workload] = {"market": market_orders, "resting": resting_limits, "mixed": mixed_with_clock}


def measure(build: Workload, listening: bool, orders: int, rounds: int) -> float:
    rates = []
    for _ in range(rounds):
        workload = build(listening, orders)
        gc.collect()
        started = time.perf_counter()
        workload()
        rates.append(orders / (time.perf_counter() - started))
    return max(rates)  # the best round: the least disturbed by whatever else the machine runs


def run(orders: int, rounds: int) -> Report:
    table = Table(["workload", "no listener", "with a trade-update listener"], "lrr")
    figures: dict[str, dict[str, float]] = {}
    for name, build in WORKLOADS:
        bare, listened = measure(build, False, orders, rounds), measure(build, True, orders, rounds)
        table.add(name, f"{bare:,.0f}", f"{listened:,.0f}")
        figures[name] = {"no_listener": bare, "listener": listened}
    slowest = min(figures.items(), key=lambda item: item[1]["listener"])
    target = Target(
        f"at least {TARGET_PER_SECOND:,} submissions/s in every workload with a listener",
        slowest[1]["listener"] >= TARGET_PER_SECOND,
        f"slowest: {slowest[0]}, {slowest[1]['listener']:,.0f}/s",
    )
    setup = f"one core, {orders:,} orders per workload, best of {rounds}"
    return Report(setup, [table], targets=[target], figures={"orders": orders, "rounds": rounds, "rates": figures})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=ORDERS, help=f"orders per workload (default: {ORDERS:,})")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"rounds, the best counts (default: {ROUNDS})")
    parser.add_argument(
        "--once",
        choices=sorted(BY_SHORT_NAME),
        help="run this one workload once, with a listener and untimed, and print nothing else (for cachegrind)",
    )
    parser.add_argument("--no-listener", action="store_true", help="with --once: no trade-update listener")
    add_common_options(parser, quick=f"{QUICK['orders']:,} orders, {QUICK['rounds']} round")
    args = parse_args(parser, argv, QUICK)
    if args.orders < 1 or args.rounds < 1:
        parser.error("--orders and --rounds must be at least 1")
    if args.once:
        BY_SHORT_NAME[args.once](not args.no_listener, args.orders)()
        print(f"{args.orders:,} submissions: {args.once}, {'no' if args.no_listener else 'with a'} listener")
        return
    run(args.orders, args.rounds).publish(args.json)


if __name__ == "__main__":
    main()
