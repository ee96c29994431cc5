"""OrderUpdates: each user's changes to that user's subscribers only, in order, none conflated;
a subscriber that falls too far behind is ended rather than left to grow its queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from server.models import Order as OrderRow
from server.streams.orders import MAX_PENDING_UPDATES, OrderFeed, OrderUpdates, SlowConsumerError
from server.trading.ledger import OrderChange

pytestmark = pytest.mark.anyio
WAIT_SECONDS = 1.0


ROW = OrderRow(
    user_id="alice",
    connection_id="alice-paper",
    client_order_id="order-1",
    symbol="AAPL",
    asset_class="us_equity",
    side="buy",
    order_type="market",
    time_in_force="day",
    status="new",
)


def change(user_id: str, event: str = "new") -> OrderChange:
    """A change told apart from others by its event (the order row does not matter here)."""
    return OrderChange(user_id, f"{user_id}-paper", event, ROW)


async def take(feed: OrderFeed, count: int) -> list[OrderChange]:
    changes: AsyncIterator[OrderChange] = feed.changes()
    async with asyncio.timeout(WAIT_SECONDS):
        return [await anext(changes) for _ in range(count)]


async def test_changes_reach_only_their_owner() -> None:
    updates = OrderUpdates()
    alice, bob = updates.subscribe("alice"), updates.subscribe("bob")
    mine = change("alice")
    updates.publish(mine)
    assert await take(alice, 1) == [mine]
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.02):
            await anext(bob.changes())


async def test_every_subscriber_of_a_user_gets_every_change_in_order() -> None:
    updates = OrderUpdates()
    first, second = updates.subscribe("alice"), updates.subscribe("alice")
    published = [
        change("alice", "new"),
        change("alice", "partial_fill"),
        change("alice", "fill"),
    ]
    for each in published:
        updates.publish(each)
    assert await take(first, 3) == published  # not conflated: the same order's changes all arrive
    assert await take(second, 3) == published


async def test_a_closed_subscriber_hears_nothing_more() -> None:
    updates = OrderUpdates()
    kept, closed = updates.subscribe("alice"), updates.subscribe("alice")
    assert updates.subscriber_count("alice") == 2
    closed.close()
    closed.close()
    assert updates.subscriber_count("alice") == 1
    later = change("alice", "fill")
    updates.publish(later)
    assert await take(kept, 1) == [later]
    kept.close()
    assert updates.subscriber_count("alice") == 0


async def test_a_user_subscribing_again_after_all_closed_is_heard() -> None:
    updates = OrderUpdates()
    old = updates.subscribe("alice")
    old.close()
    new = updates.subscribe("alice")
    old.close()  # a stale close must not unregister the new subscriber
    assert updates.subscriber_count("alice") == 1
    fresh = change("alice")
    updates.publish(fresh)
    assert await take(new, 1) == [fresh]


async def test_a_full_queue_is_not_yet_an_overflow() -> None:
    updates = OrderUpdates()
    feed = updates.subscribe("alice")
    published = [change("alice", f"event-{n}") for n in range(MAX_PENDING_UPDATES)]
    for each in published:
        updates.publish(each)
    assert updates.subscriber_count("alice") == 1
    assert await take(feed, MAX_PENDING_UPDATES) == published


async def test_a_slow_consumer_is_ended_and_others_carry_on() -> None:
    updates = OrderUpdates()
    slow, reader = updates.subscribe("alice"), updates.subscribe("alice")
    reader_changes = reader.changes()
    for n in range(MAX_PENDING_UPDATES + 1):
        updates.publish(change("alice", f"event-{n}"))
        async with asyncio.timeout(WAIT_SECONDS):
            await anext(reader_changes)
    assert updates.subscriber_count("alice") == 1  # the slow one was let go
    with pytest.raises(SlowConsumerError, match=str(MAX_PENDING_UPDATES)):
        await take(slow, 1)  # at once: no stale backlog first

    after = change("alice", "fill")
    updates.publish(after)
    async with asyncio.timeout(WAIT_SECONDS):
        assert await anext(reader_changes) == after
