"""Streamed results are encoded once and spliced into each subscriber's message."""

from __future__ import annotations

import json

from server.api.streams.encoding import PayloadEncoder


def test_a_shared_result_is_encoded_once_for_every_subscriber() -> None:
    encoder = PayloadEncoder()
    data = {"quotes": {"symbol": "AAPL", "bidPrice": "229.99", "note": 'say "hi" \u00e9'}}
    first = encoder.encode({"id": "1", "type": "next", "payload": {"data": data}})
    second = encoder.encode({"id": 'op "2"', "type": "next", "payload": {"data": data}})
    assert json.loads(first) == {"id": "1", "type": "next", "payload": {"data": data}}
    assert json.loads(second) == {"id": 'op "2"', "type": "next", "payload": {"data": data}}
    assert encoder.hits == 1
    legacy = encoder.encode({"type": "data", "id": "3", "payload": {"data": data}})
    assert json.loads(legacy) == {"type": "data", "id": "3", "payload": {"data": data}}
    assert encoder.hits == 2


def test_other_messages_are_encoded_as_they_are() -> None:
    encoder = PayloadEncoder()
    data = {"orderUpdates": None}
    messages = [
        {"id": "1", "type": "next", "payload": {"data": data, "errors": [{"message": "no"}]}},
        {"id": "1", "type": "complete"},
        {"type": "connection_ack"},
        {"data": data},  # an HTTP answer
        {"id": "1", "type": "next", "payload": {"data": None}},
    ]
    for message in messages:
        assert json.loads(encoder.encode(message)) == message
        assert encoder.encode(message) == json.dumps(message, separators=(",", ":"))
    assert encoder.hits == 0


def test_an_equal_but_new_result_is_encoded_afresh_and_old_ones_are_let_go() -> None:
    encoder = PayloadEncoder(size=2)
    results = [{"quotes": {"n": n}} for n in range(3)]
    for result in results:
        encoder.encode({"id": "1", "type": "next", "payload": {"data": result}})
    assert encoder.hits == 0
    assert len(encoder._encoded) == 2  # the oldest went
    changed = {"quotes": {"n": 2}}  # equal to the last, but a different object: encoded again
    assert json.loads(encoder.encode({"id": "1", "type": "next", "payload": {"data": changed}}))["payload"] == {
        "data": changed
    }
    assert encoder.hits == 0
