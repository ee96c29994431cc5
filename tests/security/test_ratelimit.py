from __future__ import annotations

import asyncio

import pytest

from server.security.ratelimit import KeyedLimiter, Rate, RateLimited

pytestmark = pytest.mark.anyio


async def test_calls_over_the_rate_are_refused_at_once_with_a_retry_time() -> None:
    limiter = KeyedLimiter(Rate(3, 60), max_keys=10)
    for _ in range(3):
        await limiter.hit("ada")
    with pytest.raises(RateLimited) as refused:
        await limiter.hit("ada")
    assert refused.value.retry_after == 20
    await limiter.hit("grace")  # another key has its own bucket


async def test_the_map_of_buckets_stays_bounded() -> None:
    limiter = KeyedLimiter(Rate(1, 60), max_keys=100)
    for number in range(1000):
        await limiter.hit(f"user-{number}")
    assert len(limiter) == 100
    await limiter.hit("user-0")  # forgotten, so it starts afresh


async def test_only_failed_attempts_count() -> None:
    limiter = KeyedLimiter(Rate(2, 60), max_keys=10)
    for _ in range(5):
        async with limiter.attempt("ada"):
            pass  # a success costs nothing
    for _ in range(2):
        async with limiter.attempt("ada") as attempt:
            attempt.failed = True
    with pytest.raises(RateLimited):
        async with limiter.attempt("ada"):
            pass


async def test_concurrent_attempts_cannot_overrun_the_limit() -> None:
    limiter = KeyedLimiter(Rate(5, 60), max_keys=10)
    release = asyncio.Event()

    async def wrong_password() -> bool:
        try:
            async with limiter.attempt("ada") as attempt:
                await release.wait()  # all of them in flight at once, as during a slow hash
                attempt.failed = True
        except RateLimited:
            return False
        return True

    tries = [asyncio.create_task(wrong_password()) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()
    assert sum(await asyncio.gather(*tries)) == 5
