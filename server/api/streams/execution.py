"""Executing subscription events: fresh loaders per event, and shared results.

graphql-core executes a subscription's selection once per event per subscriber; with a
thousand subscribers of one symbol that is a thousand identical executions of each tick.
Market payloads (`SHARED_PAYLOADS`) depend on nothing but the event, and every
subscriber of a tick receives the very same object, so the result of one (event, query,
variables) is computed once and reused by everyone who asked the same thing. Other
payloads (order updates, portfolio) run per subscriber, each event with its own loaders,
since a WebSocket's context lives for the whole connection.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, cast

from graphql import ExecutionResult, Executor
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from server.api.context import Context, fresh_loaders
from server.api.streams.types import SHARED_PAYLOADS

SHARED_RESULTS_KEPT = 4096


class _Shared:
    __slots__ = ("encoded", "operation", "payload", "result")

    def __init__(self, payload: object, operation: object, result: ExecutionResult) -> None:
        self.payload, self.operation, self.result = payload, operation, result
        self.encoded: str | None = None  # the result's `data` as JSON, once a message needs it


class _SharedResults:
    """The latest results by (payload, operation, variables); the payload and operation
    are held with the result, so an id is never reused while its entry lives. Each result's
    `data` is also found by identity, for its JSON to be made once (see encoding.py)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[int, int, str], _Shared] = OrderedDict()
        self._by_data: dict[int, _Shared] = {}
        self.hits = 0
        self.misses = 0
        self.encoding_hits = 0

    def get(self, key: tuple[int, int, str], payload: object, operation: object) -> ExecutionResult | None:
        entry = self._entries.get(key)
        if entry is None or entry.payload is not payload or entry.operation is not operation:
            self.misses += 1
            return None
        self.hits += 1
        return entry.result

    def put(self, key: tuple[int, int, str], payload: object, operation: object, result: ExecutionResult) -> None:
        self._forget(self._entries.pop(key, None))
        entry = self._entries[key] = _Shared(payload, operation, result)
        self._by_data[id(result.data)] = entry
        if len(self._entries) > self._size:
            self._forget(self._entries.popitem(last=False)[1])

    def _forget(self, entry: _Shared | None) -> None:
        if entry is not None and self._by_data.get(id(entry.result.data)) is entry:
            del self._by_data[id(entry.result.data)]

    def encoded(self, data: object, encode: Callable[[object], str]) -> str | None:
        """`data`'s JSON if it is a shared result's (made by `encode` the first time), else None."""
        entry = self._by_data.get(id(data))
        if entry is None or entry.result.data is not data:
            return None
        if entry.encoded is None:
            entry.encoded = encode(data)
        else:
            self.encoding_hits += 1
        return entry.encoded


shared_results = _SharedResults(SHARED_RESULTS_KEPT)


class SubscriptionExecutor(StrawberryGraphQLCoreExecutionContext):
    _per_event = False
    _variables_key: str | None = None

    def build_per_event_executor(self, payload: Any) -> Executor:
        if self._variables_key is None:  # once per subscription: its variables never change
            self._variables_key = repr(sorted(self.variable_values.coerced.items()))
        executor = super().build_per_event_executor(payload)  # a copy: it carries the key
        executor._per_event = True  # type: ignore[attr-defined]
        return executor

    def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        if not self._per_event:
            return super().execute_operation(*args, **kwargs)
        payload = self.root_value
        if isinstance(payload, SHARED_PAYLOADS):
            operation = self.operation
            key = (id(payload), id(operation), self._variables_key or "")
            found = shared_results.get(key, payload, operation)
            if found is not None:
                return found
            result = super().execute_operation(*args, **kwargs)
            if not self.is_awaitable(result) and not result.errors:  # market types resolve synchronously
                shared_results.put(key, payload, operation, result)
            return result
        return self._with_loaders(args, kwargs)

    async def _with_loaders(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ExecutionResult:
        context = self.context_value
        if not isinstance(context, Context):
            result = super().execute_operation(*args, **kwargs)
            return await result if self.is_awaitable(result) else result
        with fresh_loaders(context):
            result = super().execute_operation(*args, **kwargs)
            if self.is_awaitable(result):
                result = await cast(Awaitable[ExecutionResult], result)
        return cast(ExecutionResult, result)
