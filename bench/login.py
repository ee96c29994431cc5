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
import os
import platform
import statistics
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx

from server.settings import Settings
from tests.utils.processes import clean_environment, run_server

PHASE_SECONDS = 8.0
WARMUP_SECONDS = 1.0
LOGINS_PER_SECOND = 10
QUOTE = {"query": '{ quote(symbol: "AAPL") { bidPrice askPrice timestamp } }'}
PASSWORD = "tidal-Orbit-57-marmalade"
LOGIN = {
    "query": "mutation($i: LoginInput!) { login(input: $i) { accessToken userErrors { code } } }",
    "variables": {"i": {"username": "bench", "password": PASSWORD}},
}
REGISTER = {
    "query": "mutation($i: RegisterInput!) { register(input: $i) { userErrors { code } } }",
    "variables": {"i": {"username": "bench", "email": "bench@example.com", "password": PASSWORD}},
}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _quote_latencies(client: httpx.AsyncClient, seconds: float) -> list[float]:
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        response = await client.post("/graphql", json=QUOTE)
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


async def measure(base_url: str, cost: str) -> None:
    limits = httpx.Limits(max_connections=32)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as quotes,
        httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as logins,
    ):
        assert (await quotes.post("/graphql", json=REGISTER)).json()["data"]["register"]["userErrors"] == []
        await _quote_latencies(quotes, WARMUP_SECONDS)
        alone = await _quote_latencies(quotes, PHASE_SECONDS)
        login_durations: list[float] = []
        login_load = asyncio.create_task(_logins(logins, PHASE_SECONDS, login_durations))
        alongside = await _quote_latencies(quotes, PHASE_SECONDS)
        await login_load

    machine = f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores"
    print(f"{machine}, argon2id {cost}, {PHASE_SECONDS:g} s per phase\n")
    print("| quote query | requests | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|")
    for name, latencies in (("alone", alone), (f"with {LOGINS_PER_SECOND} logins/s alongside", alongside)):
        p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
        print(f"| {name} | {len(latencies):,} | {p50:.2f} | {p99:.2f} |")
    ratio = percentile(alongside, 0.99) / percentile(alone, 0.99)
    login_p50 = statistics.median(login_durations) * 1000
    print(f"\np99 ratio (with logins / alone): {ratio:.2f} (target: at most 2)")
    print(f"logins completed: {len(login_durations)}, median {login_p50:.0f} ms each")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--time-cost", type=int, help="argon2id passes (default: the server's)")
    parser.add_argument("--memory-kib", type=int, help="argon2id memory in KiB (default: the server's)")
    args = parser.parse_args(argv)
    defaults = Settings.model_fields
    time_cost = args.time_cost or defaults["password_hash_time_cost"].default
    memory_kib = args.memory_kib or defaults["password_hash_memory_kib"].default
    environment = clean_environment(
        RATE_LIMIT_ANONYMOUS_PER_MINUTE=str(10**9),
        LOGIN_ATTEMPTS_PER_IP=str(10**9),
        PASSWORD_HASH_TIME_COST=str(time_cost),
        PASSWORD_HASH_MEMORY_KIB=str(memory_kib),
    )
    with TemporaryDirectory() as tmp, run_server(Path(tmp), env=environment) as server:
        asyncio.run(measure(server.base_url, f"{time_cost} passes, {memory_kib // 1024} MiB"))


if __name__ == "__main__":
    main()
