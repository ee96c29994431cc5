"""One JSON encoding per shared subscription result.

Subscribers of one symbol share one execution result per tick (see execution.py): the
`data` of every `next` message they get is the very same object, and only the operation
id around it differs. Its JSON is made once, kept with the shared result, and spliced into
each subscriber's message; every other message is encoded as Strawberry encodes it.
"""

from __future__ import annotations

import json

from server.api.streams.execution import shared_results

_STREAMED_TYPES = frozenset({"next", "data"})  # graphql-transport-ws, legacy graphql-ws


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))  # as Strawberry encodes


def encode_message(message: object) -> str:
    data = _streamed_data(message)
    encoded = shared_results.encoded(data, _dumps) if data is not None else None
    if encoded is None:
        return _dumps(message)
    assert isinstance(message, dict)
    # The message's own keys in their own order: the bytes json.dumps would have made.
    fields = (
        f'"{key}":{{"data":{encoded}}}' if key == "payload" else f"{_dumps(key)}:{_dumps(value)}"
        for key, value in message.items()
    )
    return "{" + ",".join(fields) + "}"


def _streamed_data(message: object) -> object | None:
    """The `data` of a streamed result with nothing else in its payload, else None."""
    if not isinstance(message, dict) or message.get("type") not in _STREAMED_TYPES:
        return None
    payload = message.get("payload")
    if not isinstance(payload, dict) or len(payload) != 1:
        return None
    return payload.get("data")
