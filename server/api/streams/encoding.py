"""One JSON encoding per shared subscription result.

Subscribers of one symbol share one execution result per tick (see execution.py): the
`data` of every `next` message they get is the very same object, and only the operation
id around it differs. Its JSON is made once, kept with the shared result, and spliced into
each subscriber's message; every other message is encoded as Strawberry encodes it, but for
messages delivered directly (direct.py), which come encoded already.
"""

from __future__ import annotations

import json

from server.api.streams.execution import shared_results

_STREAMED_TYPES = frozenset({"next", "data"})  # graphql-transport-ws, legacy graphql-ws
_COMPACT = json.JSONEncoder(separators=(",", ":"))  # as Strawberry encodes (made once: json.dumps
# with separators builds a new encoder at every call)


def encode_json(value: object) -> str:
    return _COMPACT.encode(value)


class PreEncoded:
    """A message whose JSON is made already (see direct.py): sent as it is."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def encode_message(message: object) -> str:
    if isinstance(message, PreEncoded):
        return message.text
    data = _streamed_data(message)
    encoded = shared_results.encoded(data, encode_json) if data is not None else None
    if encoded is None:
        return encode_json(message)
    assert isinstance(message, dict)
    # The message's own keys in their own order: the bytes json.dumps would have made.
    fields = []
    for key, value in message.items():
        if key == "payload":
            fields.append(f'"payload":{{"data":{encoded}}}')
        elif key == "type":  # one of _STREAMED_TYPES
            fields.append(f'"type":"{value}"')
        else:
            fields.append(f"{encode_json(key)}:{encode_json(value)}")
    return "{" + ",".join(fields) + "}"


def _streamed_data(message: object) -> object | None:
    """The `data` of a streamed result with nothing else in its payload, else None."""
    if not isinstance(message, dict) or message.get("type") not in _STREAMED_TYPES:
        return None
    payload = message.get("payload")
    if not isinstance(payload, dict) or len(payload) != 1:
        return None
    return payload.get("data")
