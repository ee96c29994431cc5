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
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx

from bench.measure import bench_environment, cpu_seconds, percentile
from bench.report import Report, Table, Target, add_common_options, parse_args
from tests.utils.accounts import bearer, register
from tests.utils.processes import run_server

SWITCH_OFF_DIR = Path(__file__).resolve().parent / "switch_off"
PARTS = ("service", "entry", "ledger", "risk")  # as bench/switch_off/sitecustomize.py knows them
SWITCHED_OFF_MARK = "bench: switched off: "  # what that module prints once it has switched them off

SECONDS = 10.0
CLIENTS = 16
WARMUP_SECONDS = 2.0
QUICK = {"seconds": 1.0, "warmup": 0.2}
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


async def measure(
    base_url: str,
    seconds: float,
    count: int,
    warmup_seconds: float,
    server_pid: int,
    switched_off: tuple[str, ...] = (),
) -> Report:
    clients = await _clients(base_url, count)
    try:
        warmup = await _all(clients, warmup_seconds)
        server_cpu_started = cpu_seconds(server_pid)
        cpu_started, started = time.process_time(), time.perf_counter()
        tallies = await _all(clients, seconds)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        server_cpu = cpu_seconds(server_pid) - server_cpu_started
    finally:
        for client in clients:
            await client.http.aclose()

    latencies = [latency for tally in tallies for latency in tally.latencies]
    failures = sum((tally.failures for tally in tallies), Counter[str]())
    warmup_failures = sum(sum(tally.failures.values()) for tally in warmup)
    rate = len(latencies) / elapsed
    p50, p95, p99 = (percentile(latencies, q) * 1000 for q in (0.5, 0.95, 0.99))

    table = Table(["clients", "orders", "per second", "p50 ms", "p95 ms", "p99 ms", "failures"], "rrrrrrr")
    table.add(
        count, f"{len(latencies):,}", f"{rate:,.0f}", f"{p50:.2f}", f"{p95:.2f}", f"{p99:.2f}", f"{failures.total():,}"
    )
    lines = ["failures: " + ", ".join(f"{kind}: {n:,}" for kind, n in failures.most_common())] if failures else []
    server_ms_per_order = server_cpu * 1000 / max(1, len(latencies))
    lines += [
        f"warm-up failures: {warmup_failures:,}",
        f"server CPU: {server_cpu / elapsed:.0%} of one core, {server_ms_per_order:.1f} ms per order",
        f"load process CPU: {cpu / elapsed:.0%} of one core",
    ]
    targets = []
    if count == CLIENTS and not switched_off:  # the target is set at this many clients, whole
        targets.append(
            Target(
                f"at least {TARGET_PER_SECOND} orders/s with p99 under {TARGET_P99_MS:g} ms at {CLIENTS} clients",
                rate >= TARGET_PER_SECOND and p99 < TARGET_P99_MS,
                f"{rate:,.0f} orders/s, p99 {p99:.0f} ms",
            )
        )
    clients = f"{count} client" + ("s" if count != 1 else "")
    setup = f"one uvicorn worker, SQLite, {clients}, {elapsed:.1f} s after a {warmup_seconds:g} s warm-up"
    if switched_off:
        setup += ", switched off: " + ", ".join(switched_off)
    figures = {
        "clients": count,
        "orders": len(latencies),
        "per_second": rate,
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "failures": dict(failures),
        "warmup_failures": warmup_failures,
        "load_cpu": cpu / elapsed,
        "server_cpu": server_cpu / elapsed,
        "server_cpu_ms_per_order": server_ms_per_order,
    }
    return Report(setup, [table], lines, targets, figures)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=SECONDS, help=f"measured time (default: {SECONDS:g})")
    parser.add_argument("--clients", type=int, default=CLIENTS, help=f"concurrent clients (default: {CLIENTS})")
    parser.add_argument("--warmup", type=float, default=WARMUP_SECONDS, help=f"warm-up (default: {WARMUP_SECONDS:g})")
    parser.add_argument(
        "--switch-off",
        default="",
        help=f"parts of order entry to switch off in the server, comma-separated: {', '.join(PARTS)} "
        "(a guide to where an order's time goes; see bench/switch_off/sitecustomize.py)",
    )
    add_common_options(parser, quick=f"{QUICK['seconds']:g} s after a {QUICK['warmup']:g} s warm-up")
    args = parse_args(parser, argv, QUICK)
    if args.seconds <= 0 or args.clients < 1 or args.warmup < 0:
        parser.error("--seconds must be positive, --clients at least 1 and --warmup not negative")
    switched_off = tuple(part for part in args.switch_off.split(",") if part)
    if unknown := set(switched_off) - set(PARTS):
        parser.error(f"--switch-off takes {', '.join(PARTS)}, not {', '.join(sorted(unknown))}")
    environment = bench_environment(
        PAPER_STARTING_CASH=str(STARTING_CASH), RISK_MAX_POSITION_NOTIONAL=str(MAX_POSITION_NOTIONAL)
    )
    if switched_off:
        paths = [str(SWITCH_OFF_DIR), *filter(None, [environment.get("PYTHONPATH")])]
        environment |= {"BENCH_SWITCH_OFF": ",".join(switched_off), "PYTHONPATH": os.pathsep.join(paths)}
    with TemporaryDirectory() as tmp, run_server(Path(tmp), env=environment) as server:
        if switched_off and not any(line.startswith(SWITCHED_OFF_MARK) for line in server.log_lines):
            raise SystemExit(f"the server did not load {SWITCH_OFF_DIR / 'sitecustomize.py'}: nothing switched off")
        pid = server.process.pid
        report = asyncio.run(measure(server.base_url, args.seconds, args.clients, args.warmup, pid, switched_off))
    report.publish(args.json)


if __name__ == "__main__":
    main()
