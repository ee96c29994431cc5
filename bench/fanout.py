"""Subscription fan-out on one worker: delivered quotes per second, tick-to-client latency, memory per subscription.

Run: `.venv/bin/python -m bench.fanout` (prints a Markdown table; nothing is asserted).
A real server process (`python -m server serve`: one uvicorn worker, SQLite in a temporary
directory, the embedded paper exchange on the wall clock) on loopback; the load runs in
separate processes (`--processes`, default one) speaking graphql-transport-ws through the
`websockets` library, one signed-up user per connection. Every subscriber sends the same
document, `quotes(symbols: $s)`, with one symbol of the paper universe in `$s`, so each gets
one quote per market step.

Two phases, each on its own server (both start at once; the second idles until its turn):

1. fan-out: 1,000 subscribers at the default tick (one step a second), so 1 update a second
   each; delivered messages per second, latency p50/p99, and server memory per subscription.
2. most messages per second: the same subscribers on a fast tick (`--max-tick`, 0.05 s: 20
   updates a second each, 20,000 a second offered). A subscriber that falls behind gets the
   latest quote per symbol (stale ones are dropped), so what a saturated worker delivers is
   its ceiling; the server's CPU (/proc/PID/stat) over the window shows whether it was. A
   saturated worker starts new subscriptions slowly (each reads the database twice through
   SQLite's one connection, between long event-loop turns), so subscribing ends once none has
   started for 2 s (or after 10 s), the window measures those that did, and the report counts
   the others (the table's subscriptions are those live at the window's end).

Latency is the client's receive time minus the quote's `timestamp`: the moment its market
step began, on the same wall clock. It includes the exchange's stream pulse noticing the new
step (it wakes as each step begins), computing the quotes, the hub's fan-out into each connection's
outbox, GraphQL execution and JSON encoding (both shared by subscribers of one symbol), the
connection's writer, WebSocket framing (and permessage-deflate when offered), loopback, and
the load process's own queueing and parsing.
Memory is the server's VmRSS (/proc/PID/status) after every subscription has its first
quote, less the figure before the load connected (after a priming connection has subscribed
and closed, so one-off start-up costs are not counted), divided by the subscriptions: each
subscription's share of its WebSocket connection is included. The issue's targets: p99
under 100 ms and under 20 KB per subscription at 1,000 subscribers; at least 10,000 messages
a second from one worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import queue
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.measure import bench_environment, cpu_seconds, percentile, rss_kib
from bench.report import Report, Table, Target, add_common_options, parse_args
from server.brokers.paper.universe import UNIVERSE
from tests.utils.processes import ServerProcess, run_server

SUBSCRIBERS = 1000
PER_CONNECTION = 10
SECONDS = 10.0
WARMUP_SECONDS = 2.0
TICK_SECONDS = 1.0
MAX_TICK_SECONDS = 0.05
MAX_SECONDS = 5.0
QUICK = {"subscribers": 20, "seconds": 1.5, "max_seconds": 0.5, "warmup": 0.3}
TARGET_P99_MS = 100.0
TARGET_KB_PER_SUBSCRIPTION = 20.0
TARGET_PER_SECOND = 10_000
STEP_TIMEOUT_SECONDS = 60.0  # any one stage (connecting, subscribing, reporting) of a load process
SETTLE_STALL_SECONDS = 2.0  # subscribing ends when, after the first, no subscription has started for this long,
SETTLE_MAX_SECONDS = 10.0  # or after this long
CONNECTS_AT_ONCE = 20
PASSWORD = "tidal-Orbit-57-marmalade"
REGISTER = "mutation($i: RegisterInput!) { register(input: $i) { accessToken userErrors { code } } }"
SUBSCRIBE = (
    "subscription($s: [String!]!) { quotes(symbols: $s) { symbol bidPrice bidSize askPrice askSize timestamp } }"
)
SYMBOLS = tuple(spec.symbol for spec in UNIVERSE)
# The control block shared with the load processes: when to subscribe, and the window.
SUBSCRIBE_AT, START_AT, STOP_AT = range(3)


# ----- the load processes -----------------------------------------------------------------


@dataclass
class Plan:
    """What one load process runs: its WebSocket connections, each a token and its subscriptions' symbols."""

    url: str
    connections: list[tuple[str, list[str]]]
    compression: str | None


@dataclass
class Tally:
    """What one load process saw inside the measured window (and how its subscriptions started)."""

    messages: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    started: int = 0  # subscriptions that had their first quote when subscribing ended
    live: int = 0  # and when the window ended (a saturated server may start some late)
    problems: Counter[str] = field(default_factory=Counter)


class _Connection:
    def __init__(self, ws: ClientConnection, symbols: list[str]) -> None:
        self.ws = ws
        self.symbols = symbols
        self.settled: set[str] = set()  # operation ids that had their first message (or failed)
        self.live: set[str] = set()  # operation ids that had their first quote


async def _open(plan: Plan, token: str, symbols: list[str], gate: asyncio.Semaphore) -> _Connection:
    async with gate:
        ws = await connect(
            plan.url,
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            compression=plan.compression,
            open_timeout=STEP_TIMEOUT_SECONDS,
            close_timeout=2,
            max_queue=None,  # never stop reading the socket: the latency would include our own backpressure
        )
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
        async with asyncio.timeout(STEP_TIMEOUT_SECONDS):
            ack = json.loads(await ws.recv())
        if ack.get("type") != "connection_ack":
            raise RuntimeError(f"no connection_ack: {ack}")
    return _Connection(ws, symbols)


async def _read(connection: _Connection, control: Any, tally: Tally) -> None:
    """Count and time every quote received inside the window; note each subscription's first one."""
    parse_time = datetime.fromisoformat
    latencies = tally.latencies_ms
    try:
        async for raw in connection.ws:
            now = time.time()
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "next" and "errors" not in message["payload"]:
                if message["id"] not in connection.live:  # the latest quote, sent on subscribing
                    connection.settled.add(message["id"])
                    connection.live.add(message["id"])
                elif control[START_AT] <= now < control[STOP_AT]:
                    quote = message["payload"]["data"]["quotes"]
                    latencies.append((now - parse_time(quote["timestamp"]).timestamp()) * 1000)
                    tally.messages += 1
            elif kind == "ping":
                await connection.ws.send('{"type": "pong"}')
            elif kind != "pong":
                tally.problems[f"{kind} {json.dumps(message.get('payload'))[:160]}"] += 1
                connection.settled.add(message.get("id", ""))
    except ConnectionClosed as closed:
        if control[STOP_AT] == 0 or time.time() < control[STOP_AT]:
            tally.problems[f"connection closed: {closed}"] += 1
            connection.settled.update(str(n) for n in range(len(connection.symbols)))


async def _settle(connections: list[_Connection]) -> None:
    """Until every subscription has had its first message, or none has for a while, or time is up.

    A saturated server starts new subscriptions slowly (see the docstring): the window then
    begins with those that did start, and the report says how many did not."""
    wanted = sum(len(connection.symbols) for connection in connections)
    settled, started = 0, time.monotonic()
    progress = started
    while settled < wanted and time.monotonic() < started + SETTLE_MAX_SECONDS:
        if settled and time.monotonic() > progress + SETTLE_STALL_SECONDS:
            break
        await asyncio.sleep(0.05)
        now_settled = sum(len(connection.settled) for connection in connections)
        if now_settled > settled:
            settled, progress = now_settled, time.monotonic()


async def _wait_for(control: Any, index: int) -> float:
    """A time the coordinator writes into the control block (polled: no asyncio event crosses processes)."""
    async with asyncio.timeout(STEP_TIMEOUT_SECONDS * 2):
        while control[index] == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
    return float(control[index])


async def _load(plan: Plan, control: Any, reports: Any) -> None:
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)
    connections = await asyncio.gather(*(_open(plan, token, symbols, gate) for token, symbols in plan.connections))
    reports.put(("connected", os.getpid()))
    tally = Tally()
    try:
        await _wait_for(control, SUBSCRIBE_AT)
        readers = [asyncio.create_task(_read(connection, control, tally)) for connection in connections]
        for connection in connections:
            for n, symbol in enumerate(connection.symbols):
                subscribe = {"query": SUBSCRIBE, "variables": {"s": [symbol]}}
                await connection.ws.send(json.dumps({"id": str(n), "type": "subscribe", "payload": subscribe}))
        await _settle(connections)
        tally.started = sum(len(connection.live) for connection in connections)
        reports.put(("subscribed", os.getpid()))
        await asyncio.sleep(max(0.0, await _wait_for(control, START_AT) - time.time()))
        cpu_started = time.process_time()
        await asyncio.sleep(max(0.0, await _wait_for(control, STOP_AT) - time.time()))
        tally.cpu_seconds = time.process_time() - cpu_started
        tally.live = sum(len(connection.live) for connection in connections)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    finally:
        await asyncio.gather(*(connection.ws.close() for connection in connections), return_exceptions=True)
    reports.put(("done", tally))


def _load_process(plan: Plan, control: Any, reports: Any) -> None:
    """A load process's body (spawned: it imports this module afresh)."""
    try:
        asyncio.run(_load(plan, control, reports))
    except BaseException as error:
        reports.put(("failed", f"{type(error).__name__}: {error}"))
        raise


# ----- the coordinator ----------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    server: ServerProcess
    tick: float
    subscribers: int
    connections: int
    seconds: float
    tallies: list[Tally]
    server_cpu_seconds: float
    rss_kib: dict[str, int]
    subscribing_seconds: float

    @property
    def server_errors(self) -> Counter[str]:
        """What its server logged at ERROR (the log is complete once the server has stopped)."""
        return Counter(_error_summary(log) for log in self.server.logs() if log.get("level") == "ERROR")

    @property
    def messages(self) -> int:
        return sum(tally.messages for tally in self.tallies)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def offered(self) -> float:
        """Messages a second the live subscriptions would get if none fell behind."""
        return self.live / self.tick

    @property
    def latencies(self) -> list[float]:
        return [latency for tally in self.tallies for latency in tally.latencies_ms]

    def latency(self, fraction: float) -> float:
        return percentile(self.latencies, fraction)

    @property
    def started(self) -> int:
        return sum(tally.started for tally in self.tallies)

    @property
    def live(self) -> int:
        return sum(tally.live for tally in self.tallies)

    @property
    def problems(self) -> Counter[str]:
        return sum((tally.problems for tally in self.tallies), Counter[str]())

    @property
    def kib_per_subscription(self) -> float:
        return (self.rss_kib["subscribed"] - self.rss_kib["idle"]) / max(1, self.started)


async def _register(base_url: str, count: int) -> list[str]:
    async def one(http: httpx.AsyncClient, n: int) -> str:
        name = f"fan{n}"
        variables = {"i": {"username": name, "email": f"{name}@example.com", "password": PASSWORD}}
        response = await http.post("/graphql", json={"query": REGISTER, "variables": variables})
        payload = response.json()["data"]["register"]
        assert not payload["userErrors"], payload
        return payload["accessToken"]

    async with httpx.AsyncClient(base_url=base_url, timeout=STEP_TIMEOUT_SECONDS) as http:
        tokens: list[str] = []
        for first in range(0, count, 8):
            tokens += await asyncio.gather(*(one(http, n) for n in range(first, min(count, first + 8))))
        return tokens


async def _prime(url: str, token: str, subscriptions: int) -> None:
    """One connection subscribes and closes: the server's one-off costs happen before the baseline."""
    plan = Plan(url, [], None)
    connection = await _open(plan, token, list(SYMBOLS[:subscriptions]), asyncio.Semaphore(1))
    try:
        for n, symbol in enumerate(connection.symbols):
            subscribe = {"query": SUBSCRIBE, "variables": {"s": [symbol]}}
            await connection.ws.send(json.dumps({"id": str(n), "type": "subscribe", "payload": subscribe}))
        async with asyncio.timeout(STEP_TIMEOUT_SECONDS):
            while len(connection.live) < len(connection.symbols):
                message = json.loads(await connection.ws.recv())
                if message.get("type") != "next":
                    raise RuntimeError(f"priming subscription failed: {message}")
                connection.live.add(message["id"])
    finally:
        await connection.ws.close()


def _expect(reports: Any, kind: str, count: int) -> list[Any]:
    answers = []
    while len(answers) < count:
        try:
            got, value = reports.get(timeout=STEP_TIMEOUT_SECONDS * 2)
        except queue.Empty:
            raise RuntimeError(f"a load process did not report {kind!r} in time") from None
        if got == "failed":
            raise RuntimeError(f"a load process failed: {value}")
        if got != kind:
            raise RuntimeError(f"expected {kind!r} from a load process, got {got!r}")
        answers.append(value)
    return answers


def _serve(stack: ExitStack, tick: float, per_connection: int) -> ServerProcess:
    """A server process on a fresh data directory, stopped (and the directory removed) when `stack` closes."""
    data = Path(stack.enter_context(TemporaryDirectory()))
    environment = bench_environment(
        MARKET_TICK_SECONDS=str(tick), MAX_SUBSCRIPTIONS_PER_CONNECTION=str(max(per_connection, 50))
    )
    return stack.enter_context(run_server(data, env=environment))


def run_phase(name: str, server: ServerProcess, tick: float, args: argparse.Namespace, seconds: float) -> Phase:
    subscribers, per_connection = args.subscribers, args.per_connection
    symbols = [SYMBOLS[n % len(SYMBOLS)] for n in range(subscribers)]
    groups = [symbols[n : n + per_connection] for n in range(0, subscribers, per_connection)]
    pid = server.process.pid
    url = server.base_url.replace("http://", "ws://") + "/graphql"
    tokens = asyncio.run(_register(server.base_url, len(groups)))
    asyncio.run(_prime(url, tokens[0], min(per_connection, len(SYMBOLS))))
    compression = None if args.compression == "none" else args.compression
    connections = list(zip(tokens, groups, strict=True))
    plans = [Plan(url, connections[n :: args.processes], compression) for n in range(args.processes)]
    context = multiprocessing.get_context("spawn")
    control = context.RawArray("d", 3)
    reports = context.Queue()
    processes = [
        context.Process(target=_load_process, args=(plan, control, reports), daemon=True)
        for plan in plans
        if plan.connections
    ]
    try:
        rss = {"idle": rss_kib(pid)}
        for process in processes:
            process.start()
        _expect(reports, "connected", len(processes))
        rss["connected"] = rss_kib(pid)
        control[SUBSCRIBE_AT] = time.time()
        _expect(reports, "subscribed", len(processes))
        subscribing = time.time() - control[SUBSCRIBE_AT]
        rss["subscribed"] = rss_kib(pid)
        start = time.time() + args.warmup
        control[START_AT], control[STOP_AT] = start, start + seconds
        time.sleep(max(0.0, start - time.time()))
        cpu_started = cpu_seconds(pid)
        time.sleep(max(0.0, start + seconds - time.time()))
        server_cpu = cpu_seconds(pid) - cpu_started
        rss["end"] = rss_kib(pid)
        tallies: list[Tally] = _expect(reports, "done", len(processes))
    finally:
        for process in processes:
            process.join(timeout=STEP_TIMEOUT_SECONDS)
            if process.is_alive():
                process.kill()
                process.join()
        reports.close()
        reports.join_thread()
    return Phase(name, server, tick, subscribers, len(groups), seconds, tallies, server_cpu, rss, subscribing)


def _error_summary(log: dict[str, object]) -> str:
    """An error log line of the server in brief: its message and the exception's last line."""
    exception = str(log.get("exc") or "").strip().splitlines()
    return f"{log.get('msg')}: {exception[-1][:200]}" if exception else str(log.get("msg"))


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def report(phases: Sequence[Phase], args: argparse.Namespace) -> Report:
    fan_out, most = phases
    compression = "permessage-deflate" if args.compression == "deflate" else "no compression"
    setup = (
        f"one uvicorn worker, SQLite; graphql-transport-ws ({compression}); {args.processes} load "
        f"process(es); {args.per_connection} subscriptions per connection, one user per connection; "
        f"windows of {fan_out.seconds:g} s and {most.seconds:g} s, each after a {args.warmup:g} s warm-up"
    )
    table = Table(
        [
            "phase",
            "tick s",
            "subscriptions",
            "connections",
            "messages",
            "per second",
            "of offered",
            "p50 ms",
            "p99 ms",
            "max ms",
            "server CPU",
            "load CPU",
        ],
        "lrrrrrrrrrrr",
    )
    figures: dict[str, Any] = {}
    for phase in phases:
        load_cpu = sum(tally.cpu_seconds for tally in phase.tallies) / phase.seconds
        table.add(
            phase.name,
            f"{phase.tick:g}",
            f"{phase.live:,}",
            f"{phase.connections:,}",
            f"{phase.messages:,}",
            f"{phase.rate:,.0f}",
            f"{phase.rate / max(phase.offered, 1e-9):.0%}",
            f"{phase.latency(0.5):.1f}",
            f"{phase.latency(0.99):.1f}",
            f"{max(phase.latencies, default=float('nan')):.1f}",
            f"{phase.server_cpu_seconds / phase.seconds:.0%}",
            f"{load_cpu:.0%}",
        )
        figures[phase.name] = {
            "tick_seconds": phase.tick,
            "subscriptions": phase.live,
            "connections": phase.connections,
            "messages": phase.messages,
            "per_second": phase.rate,
            "p50_ms": phase.latency(0.5),
            "p99_ms": phase.latency(0.99),
            "server_cpu": phase.server_cpu_seconds / phase.seconds,
            "load_cpu": load_cpu,
        }
    rss = fan_out.rss_kib
    per_subscription = fan_out.kib_per_subscription
    per_connection = (rss["connected"] - rss["idle"]) / max(1, fan_out.connections)
    figures |= {"rss_kib": rss, "kib_per_subscription": per_subscription, "kib_per_connection": per_connection}
    lines = [
        f"server VmRSS in the fan-out phase: {_mib(rss['idle'])} MiB before the load, {_mib(rss['connected'])} "
        f"with {fan_out.connections:,} connections, {_mib(rss['subscribed'])} with {fan_out.started:,} "
        f"subscriptions, {_mib(rss['end'])} after the window",
        f"memory per subscription: {per_subscription:.1f} KiB (its share of a connection included; "
        f"a connection alone: {per_connection:.1f} KiB)",
    ]
    for phase in phases:
        cpu_per_message = phase.server_cpu_seconds / max(1, phase.messages) * 1e6
        if not cpu_per_message:  # a quick run can finish inside one CPU-clock tick
            lines.append(f"{phase.name}: too little server CPU used to measure per message")
            continue
        figures[phase.name]["server_cpu_us_per_message"] = cpu_per_message
        lines.append(
            f"{phase.name}: server CPU per delivered message {cpu_per_message:.0f} us, "
            f"so one fully busy core would deliver about {1e6 / cpu_per_message:,.0f} a second"
        )
    for phase in phases:
        line = f"{phase.name}: subscribing took {phase.subscribing_seconds:.1f} s"
        missing = phase.subscribers - phase.started
        line += f"; {missing:,} of {phase.subscribers:,} had no quote yet when it ended" if missing else ""
        line += f"; {phase.live:,} had one by the window's end" if phase.live != phase.started else ""
        lines.append(line)
        lines += [f"{phase.name}: {count:,} x {problem}" for problem, count in phase.problems.most_common(3)]
        lines += [
            f"{phase.name}: server logged {count:,} x {error}" for error, count in phase.server_errors.most_common(3)
        ]
        busiest = max((tally.cpu_seconds / phase.seconds for tally in phase.tallies), default=0.0)
        if busiest > 0.9:
            lines.append(
                f"{phase.name}: a load process was busy {busiest:.0%} of the window: rerun with more --processes"
            )
    targets = [
        Target(
            f"at least {TARGET_PER_SECOND:,} messages/s from one worker",
            most.rate >= TARGET_PER_SECOND,
            f"{most.rate:,.0f}/s",
        )
    ]
    if fan_out.subscribers == SUBSCRIBERS:  # the issue sets these two at this many subscribers
        targets[:0] = [
            Target(
                f"p99 under {TARGET_P99_MS:g} ms at {SUBSCRIBERS:,} subscribers",
                fan_out.latency(0.99) < TARGET_P99_MS,
                f"{fan_out.latency(0.99):.0f} ms",
            ),
            Target(
                f"under {TARGET_KB_PER_SUBSCRIPTION:g} KB per subscription at {SUBSCRIBERS:,} subscribers",
                per_subscription * 1024 < TARGET_KB_PER_SUBSCRIPTION * 1000,  # KiB against the KB
                f"{per_subscription:.1f} KiB, {per_subscription * 1.024:.1f} KB",
            ),
        ]
    else:
        lines.append(f"the latency and memory targets are set at {SUBSCRIBERS:,} subscribers: not judged here")
    return Report(setup, [table], lines, targets, figures)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=SUBSCRIBERS, help="subscriptions, one symbol each")
    parser.add_argument("--per-connection", type=int, default=PER_CONNECTION, help="subscriptions per WebSocket")
    parser.add_argument("--seconds", type=float, default=SECONDS, help="fan-out phase: measured window")
    parser.add_argument("--tick", type=float, default=TICK_SECONDS, help="fan-out phase: market tick")
    parser.add_argument("--max-seconds", type=float, default=MAX_SECONDS, help="most-messages phase: window")
    parser.add_argument("--max-tick", type=float, default=MAX_TICK_SECONDS, help="most-messages phase: market tick")
    parser.add_argument("--warmup", type=float, default=WARMUP_SECONDS, help="seconds before each window")
    parser.add_argument("--processes", type=int, default=1, help="load processes")
    parser.add_argument("--compression", choices=("deflate", "none"), default="deflate", help="what clients offer")
    add_common_options(parser, quick=", ".join(f"{name} {value:g}" for name, value in QUICK.items()))
    args = parse_args(parser, argv, QUICK)
    if min(args.subscribers, args.per_connection, args.processes) < 1 or args.per_connection > 1000:
        parser.error("--subscribers, --per-connection (at most 1,000) and --processes must be at least 1")
    if min(args.seconds, args.max_seconds, args.tick, args.max_tick) <= 0 or args.warmup < 0:
        parser.error("times must be positive")
    # Both servers start at once (starting is mostly imports); the second idles, with no stream
    # sessions its market pulse does nothing, until the first has been measured and stopped.
    with ExitStack() as first, ExitStack() as second:
        with ThreadPoolExecutor(2) as pool:
            starting = [
                pool.submit(_serve, stack, tick, args.per_connection)
                for stack, tick in ((first, args.tick), (second, args.max_tick))
            ]
            servers = [future.result() for future in starting]
        fan_out = run_phase("fan-out", servers[0], args.tick, args, args.seconds)
        first.close()  # stopped before the second phase: it would compete for the cores
        most = run_phase("most messages", servers[1], args.max_tick, args, args.max_seconds)
    report([fan_out, most], args).publish(args.json)  # both servers stopped: their logs are complete


if __name__ == "__main__":
    main()
