"""A quote over HTTP: the GraphQL `quote` query against a plain Starlette JSON route, same process, same run.

Run: `.venv/bin/python -m bench.http_quotes` (prints Markdown tables; nothing is asserted).
One server process (`python -m bench.plain_route`: the real app, one uvicorn worker, plus
`/plain/quote`, which answers the same fields of the same quote from the same quote source
through the same middleware); this process is the load, on loopback: 32 keep-alive
HTTP/1.1 connections, each sending its next request as soon as the last is answered, for a
bounded time. A raw asyncio protocol on uvloop keeps the load cheap: first it drives the
app's trivial `/healthz`, to show how many requests a second one core of load can send,
then plain and GraphQL rounds alternate (plain, GraphQL, GraphQL with `Cache-Control:
no-cache`, plain, ...), each a warm-up and a measured window, and each kind's figures are the
medians of its rounds. The plain GraphQL request is what a ticker page sends, and its answer
is reused within the market step (server/api/answers.py); `no-cache` executes it every time.
Only 200 answers carrying a quote count; the rest are failures. The issue's target: GraphQL
at least half the plain route's requests per second, judged for both GraphQL rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from tempfile import TemporaryDirectory
from urllib.parse import urlsplit

import httpx
import uvloop

from bench.measure import bench_environment, cpu_seconds, percentile
from bench.plain_route import FIELDS, PATH, running
from bench.report import Report, Table, Target, add_common_options, parse_args

CONNECTIONS = 32
ROUNDS = 3
SECONDS = 5.0
WARMUP_SECONDS = 1.0
QUICK = {"rounds": 1, "seconds": 0.5, "warmup": 0.2}
DRAIN_TIMEOUT_SECONDS = 30.0  # answers still out when a window ends
TARGET_RATIO = 0.5
LOAD_BUSY = 0.9  # a load process busier than this may have been the limit
SYMBOL = "AAPL"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)", re.IGNORECASE)
GRAPHQL_QUERY = f'{{ quote(symbol: "{SYMBOL}") {{ {" ".join(FIELDS)} }} }}'


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str
    body: bytes = b""
    expect: bytes = b'"bidPrice"'  # in every good answer's body
    headers: str = ""  # extra header lines, each ending in CRLF

    def request(self, host: str) -> bytes:
        head = f"{self.method} {self.path} HTTP/1.1\r\nHost: {host}\r\n{self.headers}"
        if self.body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\n"
        return (head + "\r\n").encode() + self.body


TRIVIAL = Route("trivial `/healthz`", "GET", "/healthz", expect=b'"ok"')
PLAIN = Route(f"plain Starlette `{PATH}`", "GET", f"{PATH}?symbol={SYMBOL}")
GRAPHQL = Route("GraphQL `quote`", "POST", "/graphql", json.dumps({"query": GRAPHQL_QUERY}).encode())
# The same request asking for a fresh answer: executed every time, not reused within the market step.
GRAPHQL_FRESH = Route(
    "GraphQL `quote`, `Cache-Control: no-cache`",
    GRAPHQL.method,
    GRAPHQL.path,
    GRAPHQL.body,
    headers="Cache-Control: no-cache\r\n",
)


@dataclass
class Window:
    start: float
    stop: float
    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request out at a time; answers inside the window are recorded."""

    def __init__(self, request: bytes, expect: bytes, window: Window, closed: asyncio.Future[None]) -> None:
        self.request, self.expect, self.window, self.closed = request, expect, window, closed
        self.buffer = bytearray()
        self.sent = 0.0
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set on connecting

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCP transports: not asyncio's class
        self._send()

    def _send(self) -> None:
        self.sent = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buffer[:end])
        found = _CONTENT_LENGTH.search(head)
        if found is None:
            self._fail("an answer without content-length")
            return
        length = int(found[1])
        if len(buffer) < end + 4 + length:
            return
        now = time.perf_counter()
        body = bytes(buffer[end + 4 : end + 4 + length])
        del buffer[: end + 4 + length]
        window = self.window
        if window.start <= now < window.stop:
            if not head.startswith(b"HTTP/1.1 200 "):
                window.failures[head.split(b"\r\n", 1)[0].decode(errors="replace")] += 1
            elif self.expect not in body or b'"errors"' in body:
                window.failures["200 without the expected answer"] += 1
            else:
                window.latencies.append(now - self.sent)
        if now < window.stop:
            self._send()
        else:
            self.transport.close()

    def _fail(self, why: str) -> None:
        self.window.failures[why] += 1
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if time.perf_counter() < self.window.stop:
            self.window.failures[f"connection lost: {exc}"] += 1
        if not self.closed.done():
            self.closed.set_result(None)


@dataclass
class Round:
    route: Route
    seconds: float
    latencies: list[float]
    failures: Counter[str]
    server_cpu: float  # seconds of CPU in the window
    load_cpu: float

    # Its figures, as methods: `Summary.median` takes one (`Round.rate`, ...).
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def ms(self, fraction: float) -> float:
        return percentile(self.latencies, fraction) * 1000

    def p50_ms(self) -> float:
        return self.ms(0.5)

    def p99_ms(self) -> float:
        return self.ms(0.99)

    def server_busy(self) -> float:
        """The server's CPU over the window, as a share of one core."""
        return self.server_cpu / self.seconds

    def load_busy(self) -> float:
        return self.load_cpu / self.seconds


async def _round(
    address: tuple[str, int], server_pid: int, route: Route, connections: int, warmup: float, seconds: float
) -> Round:
    loop = asyncio.get_running_loop()
    request = route.request(f"{address[0]}:{address[1]}")
    begin = time.perf_counter()
    window = Window(begin + warmup, begin + warmup + seconds)
    closed = [loop.create_future() for _ in range(connections)]
    await asyncio.gather(
        *(loop.create_connection(lambda f=f: _Connection(request, route.expect, window, f), *address) for f in closed)
    )
    await asyncio.sleep(max(0.0, window.start - time.perf_counter()))
    load_started, server_started = time.process_time(), cpu_seconds(server_pid)
    await asyncio.sleep(max(0.0, window.stop - time.perf_counter()))
    load_cpu, server_cpu = time.process_time() - load_started, cpu_seconds(server_pid) - server_started
    async with asyncio.timeout(DRAIN_TIMEOUT_SECONDS):
        await asyncio.gather(*closed)
    return Round(route, seconds, window.latencies, window.failures, server_cpu, load_cpu)


async def _rounds(base_url: str, server_pid: int, args: argparse.Namespace) -> list[Round]:
    url = urlsplit(base_url)
    address = (url.hostname or "127.0.0.1", url.port or 80)
    rounds = [await _round(address, server_pid, TRIVIAL, args.connections, args.warmup, args.seconds)]
    for _ in range(args.rounds):
        for route in (PLAIN, GRAPHQL, GRAPHQL_FRESH):
            rounds.append(await _round(address, server_pid, route, args.connections, args.warmup, args.seconds))
    return rounds


def check_same_answer(base_url: str) -> None:
    """Both routes answer the same fields of the same quote (the market moves at most a step between them)."""
    with httpx.Client(base_url=base_url, timeout=30) as http:
        plain = http.get(PLAIN.path).raise_for_status().json()
        graphql = http.post("/graphql", json={"query": GRAPHQL_QUERY}).raise_for_status().json()
    quote = graphql["data"]["quote"]
    if list(plain) != list(quote) or plain["symbol"] != quote["symbol"]:
        raise RuntimeError(f"the routes answer differently: {plain} against {quote}")


@dataclass
class Summary:
    """One route's rounds: medians of their figures, and CPU per request over all of them."""

    route: Route
    rounds: list[Round]

    def median(self, figure: Callable[[Round], float]) -> float:
        """The median of one figure of the rounds, e.g. `median(Round.rate)`."""
        return statistics.median(figure(r) for r in self.rounds)

    @property
    def failures(self) -> Counter[str]:
        return sum((r.failures for r in self.rounds), Counter[str]())

    def _per_request_us(self, seconds: float) -> float:
        return seconds / max(1, sum(len(r.latencies) for r in self.rounds)) * 1e6

    @property
    def server_us_per_request(self) -> float:
        """Microseconds of the server's CPU per answered request, over all the rounds."""
        return self._per_request_us(sum(r.server_cpu for r in self.rounds))

    @property
    def load_us_per_request(self) -> float:
        """Microseconds of the load's CPU per answered request, over all the rounds."""
        return self._per_request_us(sum(r.load_cpu for r in self.rounds))

    def figures(self) -> dict[str, object]:
        return {
            "per_second": self.median(Round.rate),
            "p50_ms": self.median(Round.p50_ms),
            "p99_ms": self.median(Round.p99_ms),
            "server_cpu": self.median(Round.server_busy),
            "server_us_per_request": self.server_us_per_request,
            "load_cpu": self.median(Round.load_busy),
            "load_us_per_request": self.load_us_per_request,
            "failures": self.failures.total(),
        }


def report(rounds: list[Round], args: argparse.Namespace) -> Report:
    routes = (TRIVIAL, PLAIN, GRAPHQL, GRAPHQL_FRESH)
    summaries = [Summary(route, [r for r in rounds if r.route is route]) for route in routes]
    trivial, plain, graphql, fresh = summaries
    table = Table(
        ["route", "requests/s", "p50 ms", "p99 ms", "server CPU", "server us/request", "load CPU", "failures"],
        "lrrrrrrr",
    )
    for summary in summaries:
        table.add(
            summary.route.name,
            f"{summary.median(Round.rate):,.0f}",
            f"{summary.median(Round.p50_ms):.2f}",
            f"{summary.median(Round.p99_ms):.2f}",
            f"{summary.median(Round.server_busy):.0%}",
            f"{summary.server_us_per_request:,.0f}",
            f"{summary.median(Round.load_busy):.0%}",
            f"{summary.failures.total():,}",
        )
    each = Table(["round", "route", "requests/s", "p50 ms", "p99 ms"], "rlrrr")
    for n, r in enumerate(rounds):
        each.add(n, r.route.name, f"{r.rate():,.0f}", f"{r.p50_ms():.2f}", f"{r.p99_ms():.2f}")
    plain_rate = plain.median(Round.rate)
    ratio = graphql.median(Round.rate) / plain_rate
    p50_ratio, p99_ratio = (graphql.median(figure) / plain.median(figure) for figure in (Round.p50_ms, Round.p99_ms))
    fresh_ratio = fresh.median(Round.rate) / plain_rate
    layer = fresh.server_us_per_request - plain.server_us_per_request
    load_capacity = 1e6 / max(trivial.load_us_per_request, 1e-3)
    lines = [
        f"GraphQL / plain: {ratio:.2f} of the requests per second, p50 {p50_ratio:.1f}x, p99 {p99_ratio:.1f}x",
        f"executed every time (`no-cache`): {fresh_ratio:.2f} of the plain route's requests per second",
        f"executing GraphQL costs the server {layer:,.0f} us of CPU per request (the `no-cache` row's less the "
        "plain route's)",
        f"load generator: {trivial.load_us_per_request:.0f} us of CPU per request (against `/healthz`), so one "
        f"core of load sends about {load_capacity:,.0f} requests/s, {load_capacity / plain_rate:.1f}x "
        "the plain route's rate",
    ]
    for summary in summaries:
        lines += [f"{summary.route.name}: {count:,} x {why}" for why, count in summary.failures.most_common(3)]
    busy = [r for r in rounds if r.load_busy() > LOAD_BUSY]
    if busy:
        lines.append(
            f"the load process was over {LOAD_BUSY:.0%} busy in {len(busy)} round(s): it may have been the limit"
        )
    setup = (
        f"one uvicorn worker and this load process on loopback, sharing the cores; "
        f"{args.connections} keep-alive connections; {args.rounds} round(s) per route, each {args.seconds:g} s "
        f"after a {args.warmup:g} s warm-up; medians of the rounds"
    )
    figures: dict[str, object] = {summary.route.name: summary.figures() for summary in summaries}
    figures |= {"ratio": ratio, "fresh_ratio": fresh_ratio, "connections": args.connections}
    targets = [
        Target(
            f"GraphQL at least {TARGET_RATIO:g} of the plain route's requests/s, the same anonymous query "
            "(answer reused within the market step)",
            ratio >= TARGET_RATIO,
            f"{ratio:.2f}: {graphql.median(Round.rate):,.0f} against {plain_rate:,.0f}",
        ),
        Target(
            f"GraphQL at least {TARGET_RATIO:g} of the plain route's requests/s, executed every time (`no-cache`)",
            fresh_ratio >= TARGET_RATIO,
            f"{fresh_ratio:.2f}: {fresh.median(Round.rate):,.0f} against {plain_rate:,.0f}",
        ),
    ]
    return Report(setup, [table, each], lines, targets, figures)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=CONNECTIONS, help=f"(default: {CONNECTIONS})")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"rounds per route (default: {ROUNDS})")
    parser.add_argument("--seconds", type=float, default=SECONDS, help=f"measured per round (default: {SECONDS:g})")
    parser.add_argument("--warmup", type=float, default=WARMUP_SECONDS, help="warm-up per round (default: 1)")
    add_common_options(parser, quick=", ".join(f"{name} {value:g}" for name, value in QUICK.items()))
    args = parse_args(parser, argv, QUICK)
    if min(args.connections, args.rounds) < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--connections and --rounds must be at least 1, --seconds positive, --warmup not negative")
    with TemporaryDirectory() as data:
        with running(bench_environment(DATA_DIR=data)) as server:
            check_same_answer(server.base_url)
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                rounds = runner.run(_rounds(server.base_url, server.process.pid, args))
        errors = [log for log in server.logs() if log.get("level") == "ERROR"]
    result = report(rounds, args)
    result.lines += [f"server logged at ERROR: {log.get('msg')}" for log in errors[:3]]
    result.publish(args.json)


if __name__ == "__main__":
    main()
