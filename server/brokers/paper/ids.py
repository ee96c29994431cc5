"""Identifiers for paper orders, executions and accounts.

They look like Alpaca's (UUID strings), but come from a per-process random prefix and a
counter: unique within the exchange, unguessable across runs, and about twenty times
cheaper than `uuid4()` on the order-entry hot path.
"""

from __future__ import annotations

import itertools
import uuid

_PREFIX = str(uuid.uuid4())[:24]  # "xxxxxxxx-xxxx-4xxx-yxxx-": version and variant stay valid
_COUNTER = itertools.count(int.from_bytes(uuid.uuid4().bytes[:5], "big"))


def new_id() -> str:
    return f"{_PREFIX}{next(_COUNTER) & 0xFFFFFFFFFFFF:012x}"
