"""Rate limits: one aiolimiter leaky bucket per key (a user, an IP, a username), LRU-bounded.

A call over the limit is refused at once (`RateLimited` with the seconds to wait), never
queued: a queued request would hold its connection open and let a flood pile up. The
buckets live in an LRU map capped at `max_keys`, so memory does not grow with the number
of users or addresses; a key pushed out of the map only loses the memory of its recent
calls, which errs on the side of the caller.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

from aiolimiter import AsyncLimiter

from server.settings import Settings


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limited; retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass(slots=True)
class Attempt:
    failed: bool = False


@dataclass(frozen=True, slots=True)
class Rate:
    calls: int
    seconds: float

    @property
    def retry_after(self) -> int:
        """How long until the bucket has room again: it never holds more than `calls`,
        so one call's worth drains in at most this time."""
        return max(1, math.ceil(self.seconds / self.calls))


class KeyedLimiter:
    def __init__(self, rate: Rate, *, max_keys: int, on_refused: Callable[[], None] | None = None) -> None:
        self.rate = rate
        self._max_keys = max_keys
        self._on_refused = on_refused  # told of every refusal (the metrics)
        self._buckets: OrderedDict[str, AsyncLimiter] = OrderedDict()
        self._in_flight: dict[str, int] = {}  # attempts started and not yet judged, per key

    def _bucket(self, key: str) -> AsyncLimiter:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = AsyncLimiter(self.rate.calls, self.rate.seconds)
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    async def hit(self, key: str) -> None:
        """Take one call from `key`'s bucket, or raise RateLimited without waiting."""
        if not await self.try_hit(key):
            raise self._refusal()

    async def try_hit(self, key: str) -> bool:
        """Take one call from `key`'s bucket if there is room; False (nothing reported) if not."""
        bucket = self._bucket(key)
        if not bucket.has_capacity():
            return False
        await bucket.acquire()  # there is room, so this does not wait
        return True

    @asynccontextmanager
    async def attempt(self, key: str) -> AsyncIterator[Attempt]:
        """An attempt that costs a call only if it is marked failed (a wrong password).

        Attempts still in flight count against the room left, so a burst of concurrent
        tries cannot all slip past the check before the first failure is recorded."""
        bucket = self._bucket(key)
        in_flight = self._in_flight.get(key, 0)
        if not bucket.has_capacity(in_flight + 1):
            raise self._refusal()
        self._in_flight[key] = in_flight + 1
        outcome = Attempt()
        try:
            yield outcome
        finally:
            remaining = self._in_flight[key] - 1
            if remaining:
                self._in_flight[key] = remaining
            else:
                del self._in_flight[key]
        if outcome.failed and bucket.has_capacity():
            await bucket.acquire()  # there is room, so this does not wait

    def _refusal(self) -> RateLimited:
        if self._on_refused is not None:
            self._on_refused()
        return RateLimited(self.rate.retry_after)

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The server's limiters, one per kind of caller and action."""

    user: KeyedLimiter  # operations per signed-in user
    anonymous: KeyedLimiter  # operations per client address, when not signed in
    login_username: KeyedLimiter  # failed sign-ins per username
    login_ip: KeyedLimiter  # sign-in attempts per client address
    orders: KeyedLimiter  # order entry (place, replace, close) per user

    @staticmethod
    def address_key(client_ip: str | None) -> str:
        """A caller's key in the limiters kept per client address (an unknown address is one shared caller)."""
        return client_ip or "unknown"

    @classmethod
    def from_settings(cls, settings: Settings, *, on_refused: Callable[[str], None] | None = None) -> RateLimits:
        """`on_refused` hears the limiter's name (its field here) at each refusal."""

        def limiter(name: str, calls: int, seconds: float) -> KeyedLimiter:
            told = partial(on_refused, name) if on_refused is not None else None
            return KeyedLimiter(Rate(calls, seconds), max_keys=settings.rate_limit_max_keys, on_refused=told)

        window = settings.login_attempt_window_minutes * 60.0
        return cls(
            user=limiter("user", settings.rate_limit_user_per_minute, 60),
            anonymous=limiter("anonymous", settings.rate_limit_anonymous_per_minute, 60),
            login_username=limiter("login_username", settings.login_attempts_per_username, window),
            login_ip=limiter("login_ip", settings.login_attempts_per_ip, window),
            orders=limiter("orders", settings.rate_limit_orders_per_minute, 60),
        )
