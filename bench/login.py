"""Sign-ins must not stall other requests: a quote query's latency alone, and with logins alongside.

Run: `.venv/bin/python -m bench.login` (prints a Markdown table; nothing is asserted).
A real server process (`python -m server serve`, default argon2id cost: 2 passes, 19 MiB) on
loopback; this process is the client. First quote queries alone, then the same queries
while 10 logins a second run alongside, in one run, and the ratio of their p99 latencies.
The issue's target: the p99 at most doubles.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx

from bench.measure import bench_environment, percentile
from bench.report import Report, Table, Target, add_common_options, parse_args
from server.settings import Settings
from tests.utils.processes import run_server

PHASE_SECONDS = 8.0
WARMUP_SECONDS = 1.0
QUICK = {"seconds": 0.5, "warmup": 0.1}
TARGET_P99_RATIO = 2.0
LOGINS_PER_SECOND = 10
QUOTE = {"query": '{ quote(symbol: "AAPL") { bidPrice askPrice timestamp } }'}
# Executed every time (not the answer reused within the market step): the request whose
# latency the logins might disturb is a real GraphQL execution on the event loop.
FRESH = {"Cache-Control": "no-cache"}
PASSWORD = "tidal-Orbit-57-marmalade"
LOGIN = {
    "query": "mutation($i: LoginInput!) { login(input: $i) { accessToken userErrors { code } } }",
    "variables": {"i": {"username": "bench", "password": PASSWORD}},
}
REGISTER = {
    "query": "mutation($i: RegisterInput!) { register(input: $i) { userErrors { code } } }",
    "variables": {"i": {"username": "bench", "email": "bench@example.com", "password": PASSWORD}},
}


async def _quote_latencies(client: httpx.AsyncClient, seconds: float) -> list[float]:
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        response = await client.post("/graphql", json=QUOTE, headers=FRESH)
        latencies.append(time.perf_counter() - started)
        assert "errors" not in response.json(), response.text
    return latencies


async def _login(client: httpx.AsyncClient, durations: list[float]) -> None:
    started = time.perf_counter()
    response = await client.post("/graphql", json=LOGIN)
    assert response.json()["data"]["login"]["accessToken"], response.text
    durations.append(time.perf_counter() - started)


async def _logins(client: httpx.AsyncClient, seconds: float, durations: list[float]) -> None:
    async with asyncio.TaskGroup() as group:
        for _ in range(int(seconds * LOGINS_PER_SECOND)):
            group.create_task(_login(client, durations))
            await asyncio.sleep(1 / LOGINS_PER_SECOND)


async def measure(base_url: str, cost: str, seconds: float, warmup: float) -> Report:
    limits = httpx.Limits(max_connections=32)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as quotes,
        httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as logins,
    ):
        assert (await quotes.post("/graphql", json=REGISTER)).json()["data"]["register"]["userErrors"] == []
        await _quote_latencies(quotes, warmup)
        alone = await _quote_latencies(quotes, seconds)
        login_durations: list[float] = []
        login_load = asyncio.create_task(_logins(logins, seconds, login_durations))
        alongside = await _quote_latencies(quotes, seconds)
        await login_load

    phases = {"alone": alone, f"with {LOGINS_PER_SECOND} logins/s alongside": alongside}
    table = Table(["quote query", "requests", "p50 ms", "p99 ms"], "lrrr")
    figures: dict[str, object] = {}
    for name, latencies in phases.items():
        p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
        table.add(name, f"{len(latencies):,}", f"{p50:.2f}", f"{p99:.2f}")
        figures[name] = {"requests": len(latencies), "p50_ms": p50, "p99_ms": p99}
    ratio = percentile(alongside, 0.99) / percentile(alone, 0.99)
    login_p50 = statistics.median(login_durations) * 1000
    figures |= {"p99_ratio": ratio, "logins": len(login_durations), "login_p50_ms": login_p50}
    return Report(
        f"a server process on loopback, argon2id {cost}, {seconds:g} s per phase",
        [table],
        lines=[
            f"p99 ratio (with logins / alone): {ratio:.2f}",
            f"logins completed: {len(login_durations)}, median {login_p50:.0f} ms each",
        ],
        targets=[
            Target(f"quote p99 at most {TARGET_P99_RATIO:g}x with logins", ratio <= TARGET_P99_RATIO, f"{ratio:.2f}x")
        ],
        figures=figures,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--time-cost", type=int, help="argon2id passes (default: the server's)")
    parser.add_argument("--memory-kib", type=int, help="argon2id memory in KiB (default: the server's)")
    parser.add_argument("--seconds", type=float, default=PHASE_SECONDS, help="seconds per phase (default: 8)")
    parser.add_argument("--warmup", type=float, default=WARMUP_SECONDS, help="warm-up seconds (default: 1)")
    add_common_options(parser, quick=f"phases of {QUICK['seconds']:g} s after {QUICK['warmup']:g} s")
    args = parse_args(parser, argv, QUICK)
    if args.seconds <= 0 or args.warmup < 0:
        parser.error("--seconds must be positive and --warmup not negative")
    defaults = Settings.model_fields
    time_cost = args.time_cost or defaults["password_hash_time_cost"].default
    memory_kib = args.memory_kib or defaults["password_hash_memory_kib"].default
    # Here the hashing cost is what is measured: the server's default, or the one asked for.
    environment = bench_environment(PASSWORD_HASH_TIME_COST=str(time_cost), PASSWORD_HASH_MEMORY_KIB=str(memory_kib))
    with TemporaryDirectory() as tmp, run_server(Path(tmp), env=environment) as server:
        cost = f"{time_cost} passes, {memory_kib // 1024} MiB"
        report = asyncio.run(measure(server.base_url, cost, args.seconds, args.warmup))
    report.publish(args.json)


if __name__ == "__main__":
    main()
