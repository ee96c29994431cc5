"""A subscriber's queue: bounded by construction, the latest value per key wins.

A slow reader never sees stale prices and never makes the queue grow: each key (one
channel of one symbol) holds one pending value, and a newer one replaces it in place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

V = TypeVar("V")
V_contra = TypeVar("V_contra", contravariant=True)


class Receiver(Protocol[V_contra]):
    """Where a stream's values go: a Mailbox a task waits on, or a sink that handles each
    value as it is put (it must be cheap and must not block)."""

    def put(self, key: Hashable, value: V_contra) -> None: ...

    def fail(self, error: BaseException) -> None: ...


class Mailbox(Generic[V]):
    def __init__(self) -> None:
        self._pending: dict[Hashable, V] = {}
        self._error: BaseException | None = None
        self._ready = asyncio.Event()
        self.replaced = 0  # values overwritten before they were read

    def put(self, key: Hashable, value: V) -> None:
        if key in self._pending:
            self.replaced += 1
        self._pending[key] = value
        self._ready.set()

    def fail(self, error: BaseException) -> None:
        """End the reader's wait with `error` (after what is pending)."""
        if self._error is None:
            self._error = error
            self._ready.set()

    def __len__(self) -> int:
        return len(self._pending)

    def drain(self) -> list[V]:
        """Everything pending now, without waiting."""
        values = list(self._pending.values())
        self._pending.clear()
        return values

    async def take(self) -> list[V]:
        """Everything pending, oldest key first; waits for something; raises the failure once drained."""
        while not self._pending:
            if self._error is not None:
                raise self._error
            self._ready.clear()
            await self._ready.wait()
        return self.drain()
