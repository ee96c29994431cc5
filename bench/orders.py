"""Order entry through GraphQL: orders per second and latency with concurrent clients.

Run: `.venv/bin/python -m bench.orders` (prints a Markdown table; nothing is asserted).
A real server process (`python -m server serve`: one uvicorn worker, SQLite in a temporary
directory, the market always open) on loopback; this process is the load: one user and one
keep-alive connection per client, each client placing one-share market buys (`placeOrder`)
back to back, after a warm-up. Only orders answered with an order and no userErrors count;
everything else is a failure, counted by kind. The issue's target: at least 500 orders a
second with a p99 under 50 ms, at 16 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx

from bench.login import percentile
from tests.utils.accounts import bearer, register
from tests.utils.processes import clean_environment, run_server

SECONDS = 10.0
CLIENTS = 16
WARMUP_SECONDS = 2.0
REQUEST_TIMEOUT_SECONDS = 30.0
SYMBOLS = ("AAPL", "MSFT", "SPY")
TARGET_PER_SECOND = 500
TARGET_P99_MS = 50.0
PLACE = "mutation($i: PlaceOrderInput!) { placeOrder(input: $i) { order { id status } userErrors { code } } }"
# Rich enough that a long run never runs out of buying power or position room (a one-share buy each).
STARTING_CASH = 10**9
MAX_POSITION_NOTIONAL = 10**12


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)


@dataclass
class Client:
    """One signed-up user on its own keep-alive connection, numbering its orders."""

    http: httpx.AsyncClient
    name: str
    ids: itertools.count[int] = field(default_factory=itertools.count)


def _failure(response: httpx.Response) -> str | None:
    """None for an accepted order, else what went wrong."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    body = response.json()
    if body.get("errors"):
        codes = {error.get("extensions", {}).get("code", "?") for error in body["errors"]}
        return "GraphQL error " + ",".join(sorted(codes))
    payload = body["data"]["placeOrder"]
    if payload["userErrors"]:
        return "userErrors " + ",".join(sorted({error["code"] for error in payload["userErrors"]}))
    if payload["order"] is None:
        return "no order"
    return None


async def _place_orders(client: Client, seconds: float) -> Tally:
    tally = Tally()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        n = next(client.ids)
        order = {"symbol": SYMBOLS[n % len(SYMBOLS)], "side": "BUY", "qty": "1", "clientOrderId": f"{client.name}-{n}"}
        started = time.perf_counter()
        try:
            response = await client.http.post("/graphql", json={"query": PLACE, "variables": {"i": order}})
            failure = _failure(response)
        except (httpx.HTTPError, ValueError) as error:  # no answer, or not JSON
            failure = type(error).__name__
        if failure is None:
            tally.latencies.append(time.perf_counter() - started)
        else:
            tally.failures[failure] += 1
    return tally


async def _clients(base_url: str, count: int) -> list[Client]:
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_SECONDS) as anonymous:
        users = [await register(anonymous, f"bench{i}") for i in range(count)]
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return [
        Client(
            httpx.AsyncClient(
                base_url=base_url, timeout=REQUEST_TIMEOUT_SECONDS, limits=limits, headers=bearer(user.access_token)
            ),
            f"bench{i}",
        )
        for i, user in enumerate(users)
    ]


async def _all(clients: list[Client], seconds: float) -> list[Tally]:
    return await asyncio.gather(*(_place_orders(client, seconds) for client in clients))


async def measure(base_url: str, seconds: float, count: int) -> None:
    clients = await _clients(base_url, count)
    try:
        warmup = await _all(clients, WARMUP_SECONDS)
        cpu_started, started = time.process_time(), time.perf_counter()
        tallies = await _all(clients, seconds)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        for client in clients:
            await client.http.aclose()

    latencies = [latency for tally in tallies for latency in tally.latencies]
    failures = sum((tally.failures for tally in tallies), Counter[str]())
    warmup_failures = sum(sum(tally.failures.values()) for tally in warmup)
    rate = len(latencies) / elapsed
    p50, p95, p99 = (percentile(latencies, q) * 1000 if latencies else float("nan") for q in (0.5, 0.95, 0.99))

    machine = f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores"
    setup = f"one uvicorn worker, SQLite, {count} clients, {elapsed:.1f} s after a {WARMUP_SECONDS:g} s warm-up"
    print(f"{machine}; {setup}\n")
    print("| orders | per second | p50 ms | p95 ms | p99 ms | failures |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {len(latencies):,} | {rate:,.0f} | {p50:.2f} | {p95:.2f} | {p99:.2f} | {failures.total():,} |")
    met = rate >= TARGET_PER_SECOND and p99 < TARGET_P99_MS
    target = f"at least {TARGET_PER_SECOND} orders/s with p99 under {TARGET_P99_MS:g} ms"
    print(f"\ntarget: {target}: {'met' if met else 'NOT met'}")
    if failures:
        print("failures: " + ", ".join(f"{kind}: {n:,}" for kind, n in failures.most_common()))
    print(f"warm-up failures: {warmup_failures:,}")
    print(f"load process CPU: {cpu / elapsed:.0%} of one core")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=SECONDS, help=f"measured time (default: {SECONDS:g})")
    parser.add_argument("--clients", type=int, default=CLIENTS, help=f"concurrent clients (default: {CLIENTS})")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.clients < 1:
        parser.error("--seconds must be positive and --clients at least 1")
    unlimited = str(10**9)
    environment = clean_environment(
        MARKET_HOURS="always",
        RATE_LIMIT_USER_PER_MINUTE=unlimited,
        RATE_LIMIT_ORDERS_PER_MINUTE=unlimited,
        RATE_LIMIT_ANONYMOUS_PER_MINUTE=unlimited,
        PASSWORD_HASH_TIME_COST="1",  # sign-ups are not what is measured
        PASSWORD_HASH_MEMORY_KIB="8192",
        ACCESS_TOKEN_MINUTES=str(24 * 60),  # long runs keep their tokens
        PAPER_STARTING_CASH=str(STARTING_CASH),
        RISK_MAX_POSITION_NOTIONAL=str(MAX_POSITION_NOTIONAL),
    )
    with TemporaryDirectory() as tmp, run_server(Path(tmp), env=environment) as server:
        asyncio.run(measure(server.base_url, args.seconds, args.clients))


if __name__ == "__main__":
    main()
