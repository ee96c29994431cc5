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
from contextvars import ContextVar
from copy import copy
from typing import Any, cast
from weakref import WeakValueDictionary

from graphql import ExecutionResult, Executor, OperationType
from graphql.pyutils import Path
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


# The executor of the subscription the current task is setting up (its root field's
# resolver is running): what direct delivery executes each event with (see direct.py).
subscribing: ContextVar[SubscriptionExecutor | None] = ContextVar("subscribing", default=None)
_event_executors: WeakValueDictionary[tuple[int, str], SubscriptionExecutor] = WeakValueDictionary()


def shared_event_executor() -> SubscriptionExecutor | None:
    """The executor of the subscription being set up in this task, for executing its shared
    payloads' events: one per (operation, variables), shared by every subscription that sent
    them, keeping no caller's context (market payloads need none). The task forgets its own."""
    executor = subscribing.get()
    if executor is None:
        return None
    subscribing.set(None)
    key = (id(executor.operation), executor.variables_key)
    found = _event_executors.get(key)
    if found is not None and found.operation is executor.operation:  # the id was not reused
        return found
    shared = copy(executor)
    shared.context_value = None
    _event_executors[key] = shared
    return shared


class SubscriptionExecutor(StrawberryGraphQLCoreExecutionContext):
    _per_event = False
    _variables_key: str | None = None

    @property
    def variables_key(self) -> str:
        if self._variables_key is None:  # once per subscription: its variables never change
            self._variables_key = repr(sorted(self.variable_values.coerced.items()))
        return self._variables_key

    def build_resolve_info(self, field_def: Any, field_nodes: Any, parent_type: Any, path: Path) -> Any:
        info = super().build_resolve_info(field_def, field_nodes, parent_type, path)
        if not self._per_event and path.prev is None and self.operation.operation is OperationType.SUBSCRIPTION:
            subscribing.set(self)
        return info

    def build_per_event_executor(self, payload: Any) -> Executor:
        self.variables_key  # noqa: B018  (made before the copy, so every event's copy carries it)
        executor = super().build_per_event_executor(payload)
        executor._per_event = True  # type: ignore[attr-defined]
        return executor

    def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        if not self._per_event:
            return super().execute_operation(*args, **kwargs)
        payload = self.root_value
        if isinstance(payload, SHARED_PAYLOADS):
            return self._shared(payload, lambda: super(SubscriptionExecutor, self).execute_operation(*args, **kwargs))
        return self._with_loaders(args, kwargs)

    def shared_result(self, payload: object) -> ExecutionResult:
        """A shared payload's result for this subscription, as each event would be executed
        (`execute_subscription_event` on a per-event copy), but found before any copy is made."""
        return self._shared(payload, lambda: _execute_event(self.build_per_event_executor(payload)))

    def _shared(self, payload: object, execute: Callable[[], Any]) -> Any:
        operation = self.operation
        key = (id(payload), id(operation), self.variables_key)
        found = shared_results.get(key, payload, operation)
        if found is not None:
            return found
        result = execute()
        if not self.is_awaitable(result) and not result.errors:  # market types resolve synchronously
            shared_results.put(key, payload, operation, result)
        return result

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


def _execute_event(executor: Executor) -> Any:
    # The per-event copy's own lookup would miss again: execute past it.
    return super(SubscriptionExecutor, cast(SubscriptionExecutor, executor)).execute_operation(False)
