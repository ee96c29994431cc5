"""One JSON encoding per shared subscription result.

Subscribers of one symbol share one execution result per tick (see execution.py): the
`data` of every `next` message they get is the very same object, and only the operation
id around it differs. Its JSON is made once and spliced into each subscriber's message.
"""

from __future__ import annotations

import json
from typing import Any

# Results are kept by identity (and held, so an id is never reused while its entry lives);
# a tick has at most one per distinct (symbol, query, variables).
ENCODINGS_KEPT = 4096
_STREAMED_TYPES = frozenset({"next", "data"})  # graphql-transport-ws, legacy graphql-ws
_COMPACT = (",", ":")  # as Strawberry encodes


class PayloadEncoder:
    def __init__(self, size: int = ENCODINGS_KEPT) -> None:
        self._size = size
        self._encoded: dict[int, tuple[object, str]] = {}
        self.hits = 0

    def encode(self, message: object) -> str:
        data = _streamed_data(message)
        if data is None:
            return json.dumps(message, separators=_COMPACT)
        key = id(data)
        entry = self._encoded.get(key)
        if entry is not None and entry[0] is data:
            self.hits += 1
            text = entry[1]
        else:
            text = json.dumps(data, separators=_COMPACT)
            if len(self._encoded) >= self._size:
                del self._encoded[next(iter(self._encoded))]  # the oldest
            self._encoded[key] = (data, text)
        assert isinstance(message, dict)
        return f'{{"id":{json.dumps(message["id"])},"type":"{message["type"]}","payload":{{"data":{text}}}}}'


def _streamed_data(message: object) -> dict[str, Any] | None:
    """The `data` of a streamed result with nothing else in its payload, else None."""
    if not isinstance(message, dict) or len(message) != 3 or message.get("type") not in _STREAMED_TYPES:
        return None
    payload, operation_id = message.get("payload"), message.get("id")
    if not isinstance(payload, dict) or len(payload) != 1 or not isinstance(operation_id, str):
        return None
    data = payload.get("data")
    return data if isinstance(data, dict) else None


shared_encodings = PayloadEncoder()
