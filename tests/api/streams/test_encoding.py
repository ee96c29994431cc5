"""A shared subscription result is encoded once and spliced into each subscriber's message;
every message comes out as the same bytes Strawberry's own encoding would give."""

from __future__ import annotations

import json

from graphql import ExecutionResult

from server.api.streams.encoding import encode_message
from server.api.streams.execution import _SharedResults, shared_results


def strawberry_bytes(message: object) -> str:
    return json.dumps(message, separators=(",", ":"))


def test_a_shared_result_is_encoded_once_for_every_subscriber() -> None:
    data = {"quotes": {"symbol": "AAPL", "bidPrice": "229.99", "note": 'say "hi" \u00e9'}}
    shared_results.put((1, 2, "test-encoding"), object(), object(), ExecutionResult(data=data))
    hits = shared_results.encoding_hits
    messages = [
        {"id": "1", "type": "next", "payload": {"data": data}},
        {"id": 'op "2"', "type": "next", "payload": {"data": data}},
        {"type": "data", "id": "3", "payload": {"data": data}},  # legacy graphql-ws puts type first
    ]
    for message in messages:
        assert encode_message(message) == strawberry_bytes(message)
    assert shared_results.encoding_hits - hits == 2


def test_results_not_shared_and_other_messages_are_encoded_as_they_are() -> None:
    hits = shared_results.encoding_hits
    messages = [
        {"id": "1", "type": "next", "payload": {"data": {"orderUpdates": {"event": "fill"}}}},  # one subscriber's
        {"id": "1", "type": "next", "payload": {"data": {"quotes": None}, "errors": [{"message": "no"}]}},
        {"id": "1", "type": "complete"},
        {"type": "connection_ack"},
        {"data": {"quote": None}},  # an HTTP answer
        {"id": "1", "type": "next", "payload": {"data": None}},
    ]
    for message in messages:
        assert encode_message(message) == strawberry_bytes(message)
    assert shared_results.encoding_hits == hits


def test_an_evicted_or_replaced_result_is_no_longer_found_by_its_data() -> None:
    results = _SharedResults(size=2)
    data = [{"quotes": {"n": n}} for n in range(3)]
    for n, item in enumerate(data):
        results.put((n, 0, ""), object(), object(), ExecutionResult(data=item))
    assert results.encoded(data[0], strawberry_bytes) is None  # the oldest went
    assert results.encoded(data[2], strawberry_bytes) == '{"quotes":{"n":2}}'
    assert results.encoded({"quotes": {"n": 2}}, strawberry_bytes) is None  # equal, but not the shared object
    newer = {"quotes": {"n": 9}}
    results.put((2, 0, ""), object(), object(), ExecutionResult(data=newer))  # the same key, a new result
    assert results.encoded(data[2], strawberry_bytes) is None
    assert results.encoded(newer, strawberry_bytes) == '{"quotes":{"n":9}}'
