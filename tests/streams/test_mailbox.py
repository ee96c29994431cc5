"""The conflating mailbox: one pending value per key, the latest wins, failures after what is pending."""

from __future__ import annotations

import asyncio

import pytest

from server.streams.mailbox import Mailbox

pytestmark = pytest.mark.anyio
WAIT_SECONDS = 1.0


async def test_take_returns_everything_pending_in_key_order() -> None:
    mailbox: Mailbox[str] = Mailbox()
    mailbox.put("AAPL", "a1")
    mailbox.put("MSFT", "m1")
    async with asyncio.timeout(WAIT_SECONDS):
        assert await mailbox.take() == ["a1", "m1"]
    assert len(mailbox) == 0


async def test_a_newer_value_replaces_the_pending_one_in_place() -> None:
    mailbox: Mailbox[str] = Mailbox()
    mailbox.put("AAPL", "a1")
    mailbox.put("MSFT", "m1")
    mailbox.put("AAPL", "a2")
    assert len(mailbox) == 2
    assert mailbox.replaced == 1
    async with asyncio.timeout(WAIT_SECONDS):
        assert await mailbox.take() == ["a2", "m1"]  # AAPL keeps its place, with its newest value


async def test_a_slow_reader_holds_at_most_one_value_per_key() -> None:
    mailbox: Mailbox[int] = Mailbox()
    for n in range(1000):
        mailbox.put(n % 3, n)
    assert len(mailbox) == 3
    assert mailbox.replaced == 997
    assert mailbox.drain() == [999, 997, 998]


async def test_take_waits_for_a_value() -> None:
    mailbox: Mailbox[str] = Mailbox()
    taking = asyncio.create_task(mailbox.take())
    await asyncio.sleep(0.01)
    assert not taking.done()
    mailbox.put("AAPL", "a1")
    async with asyncio.timeout(WAIT_SECONDS):
        assert await taking == ["a1"]


async def test_drain_does_not_wait() -> None:
    mailbox: Mailbox[str] = Mailbox()
    assert mailbox.drain() == []
    mailbox.put("AAPL", "a1")
    assert mailbox.drain() == ["a1"]
    assert mailbox.drain() == []


async def test_a_failure_comes_after_what_is_pending_and_stays() -> None:
    mailbox: Mailbox[str] = Mailbox()
    mailbox.put("AAPL", "a1")
    mailbox.fail(RuntimeError("first"))
    mailbox.fail(RuntimeError("second"))  # the first reason is kept
    async with asyncio.timeout(WAIT_SECONDS):
        assert await mailbox.take() == ["a1"]
        with pytest.raises(RuntimeError, match="first"):
            await mailbox.take()
        with pytest.raises(RuntimeError, match="first"):
            await mailbox.take()


async def test_a_failure_wakes_a_waiting_reader() -> None:
    mailbox: Mailbox[str] = Mailbox()
    taking = asyncio.create_task(mailbox.take())
    await asyncio.sleep(0.01)
    assert not taking.done()
    mailbox.fail(LookupError("gone"))
    async with asyncio.timeout(WAIT_SECONDS):
        with pytest.raises(LookupError, match="gone"):
            await taking
