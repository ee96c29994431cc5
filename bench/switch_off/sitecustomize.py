"""Parts of order entry switched off, for `python -m bench.orders --switch-off PARTS`.

The benchmark puts this directory on the server process's PYTHONPATH, so Python loads this
module at start-up; it changes nothing unless BENCH_SWITCH_OFF names parts, and only in a
`serve` process. What an order costs with a part switched off is a guide to where its time
goes, never a figure of the product:
- service: placeOrder answers at once with a placed row (HTTP, Strawberry and the answer);
- entry: the entry read runs once per user, then its user and connection are reused;
- ledger: nothing is written (the broker's answer comes back as a row, unrecorded);
- risk: no risk check (none of its three broker calls).
"""

from __future__ import annotations

import os
import sys
from typing import Any

CONFIRMATION = "bench: switched off: "  # the benchmark reads it in the server's output


def _switch_off(parts: set[str]) -> None:
    from server.brokers.registry import ConnectionRef
    from server.trading import ledger, service

    trading = service.TradingService
    if "service" in parts:

        async def place(self: Any, user_id: str, request: Any, **_: Any) -> Any:
            ref = ConnectionRef(user_id, "switched-off")
            row = ledger.placed_row(ref, request, request.client_order_id or "", "us_equity", self._now())
            return service.OrderOutcome(row, [])

        trading._place = place  # type: ignore[method-assign]
    if "entry" in parts:
        read_once = trading._entry
        known: dict[str, tuple[Any, Any]] = {}

        async def entry(self: Any, user_id: str, connection_id: str | None, client_order_id: str) -> Any:
            if user_id not in known:
                user, connection, _ = await read_once(self, user_id, connection_id, client_order_id)
                known[user_id] = (user, connection)
            return (*known[user_id], None)

        trading._entry = entry  # type: ignore[method-assign]
    if "ledger" in parts:
        writer = ledger.LedgerWriter

        async def insert(self: Any, row: Any, first_event: Any) -> None:
            return None

        async def record(self: Any, ref: Any, order: Any, event: str) -> Any:
            return ledger._draft_from_order(ref, order, self._now()).frozen()

        writer.insert = insert  # type: ignore[method-assign]
        writer.record = record  # type: ignore[method-assign]
        writer.push = lambda self, ref, update: None  # type: ignore[method-assign]
    if "risk" in parts:

        async def no_risk(self: Any, *_: Any, **__: Any) -> list[Any]:
            return []

        trading._risk = no_risk  # type: ignore[method-assign]


_parts = set(filter(None, os.environ.get("BENCH_SWITCH_OFF", "").split(",")))
if _parts and "serve" in sys.argv:
    _switch_off(_parts)
    print(f"{CONFIRMATION}{','.join(sorted(_parts))}", file=sys.stderr, flush=True)
