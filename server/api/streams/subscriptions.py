"""Subscriptions: live market data, order updates and the live portfolio.

Each one needs a signed-in user and ends with UNAUTHENTICATED when the access token it
was opened with expires (a WebSocket outlives its token; the client reconnects with a
fresh one). Upstream refusals end it with the broker's reason as an error code.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import TypeVar

import strawberry

from server.api.auth import signed_in_claims, signed_in_user
from server.api.context import Info, fresh_loaders
from server.api.errors import bad_user_input
from server.api.market.symbols import normalize_symbols
from server.api.market.types import Quote
from server.api.streams.direct import DirectStream, direct_target, expired, set_up
from server.api.streams.execution import shared_event_executor
from server.api.streams.types import Bar, OrderUpdate, PortfolioUpdate, Trade, bar_of, quote_of, trade_of
from server.brokers import domain
from server.brokers.registry import ConnectionRef
from server.brokers.streaming import Channel, Family, MarketEvent
from server.models import BrokerConnection, User
from server.security.tokens import AccessClaims
from server.streams.portfolio import PortfolioWatch

T = TypeVar("T")


async def _subscriber(info: Info) -> tuple[User, AccessClaims]:
    # The subscription's body runs outside the operation's execution hooks, so it
    # brings its own loaders for the sign-in check.
    with fresh_loaders(info.context):
        user = await signed_in_user(info)
    return user, signed_in_claims(info)


async def _until_expiry(info: Info, claims: AccessClaims, source: AsyncIterator[T]) -> AsyncIterator[T]:
    """`source`'s items until the token expires (checked by the clock on every item, and by
    a timer while waiting, so a quiet stream ends on time too)."""
    clock = info.context.services.clock
    while True:
        remaining = (claims.expires_at - clock.now()).total_seconds()
        if remaining <= 0:
            raise expired()
        try:
            async with asyncio.timeout(remaining):
                item = await anext(source)
        except TimeoutError:
            raise expired() from None
        except StopAsyncIteration:
            return
        if claims.expires_at <= clock.now():
            raise expired()
        yield item


async def _connection(info: Info, user: User, connection_id: strawberry.ID | None) -> BrokerConnection:
    return await info.context.services.trading.connection(user.id, str(connection_id) if connection_id else None)


async def _market_events(
    info: Info,
    channel: Channel,
    symbols: list[str],
    connection_id: strawberry.ID | None,
    convert: Callable[[MarketEvent], T],
) -> AsyncIterator[T]:
    """The subscription's payloads; over WebSocket the stream is handed over to the
    connection instead (direct.py), and this ends without any."""
    services = info.context.services
    user, claims = await _subscriber(info)
    wanted = list(dict.fromkeys(normalize_symbols(symbols, limit=services.settings.max_symbols_per_request)))
    if not wanted:
        raise bad_user_input("Name at least one symbol.")
    if channel is Channel.BARS and any(Family.of(symbol) is Family.OPTIONS for symbol in wanted):
        raise bad_user_input("Bars are streamed for stocks only.")
    connection = await _connection(info, user, connection_id)
    broker = services.trading.broker(connection)
    await services.trading.call(broker.get_quotes(wanted))  # unknown symbols: BAD_USER_INPUT, before any stream
    target = direct_target.get()
    executor = shared_event_executor() if target is not None else None
    direct = None
    if target is not None and executor is not None:
        direct = DirectStream(target, executor, convert, claims.expires_at, services.clock.now)
    subscription = services.streams.subscribe(
        ConnectionRef(user.id, connection.id),
        {channel: wanted},
        lambda family: services.brokers.market_feed(connection, family),
        receiver=direct,
    )
    if direct is not None:
        direct.hand_over(subscription)
        return
    try:
        async for event in _until_expiry(info, claims, subscription.events()):
            yield convert(event)
    finally:
        subscription.close()


def _quote(event: MarketEvent) -> Quote:
    assert isinstance(event, domain.Quote)
    return quote_of(event)


def _trade(event: MarketEvent) -> Trade:
    assert isinstance(event, domain.Trade)
    return trade_of(event)


def _bar(event: MarketEvent) -> Bar:
    assert isinstance(event, domain.Bar)
    return bar_of(event)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Live quotes (stocks and OCC option symbols); a slow reader gets the latest quote per symbol."
    )
    async def quotes(
        self, info: Info, symbols: list[str], connection_id: strawberry.ID | None = None
    ) -> AsyncGenerator[Quote, None]:
        async for quote in _market_events(info, Channel.QUOTES, symbols, connection_id, _quote):
            yield quote

    @strawberry.subscription(description="Live trades as they print.")
    async def trades(
        self, info: Info, symbols: list[str], connection_id: strawberry.ID | None = None
    ) -> AsyncGenerator[Trade, None]:
        async for trade in _market_events(info, Channel.TRADES, symbols, connection_id, _trade):
            yield trade

    @strawberry.subscription(description="Live one-minute bars of stocks, each as its minute closes.")
    async def bars(
        self, info: Info, symbols: list[str], connection_id: strawberry.ID | None = None
    ) -> AsyncGenerator[Bar, None]:
        async for bar in _market_events(info, Channel.BARS, symbols, connection_id, _bar):
            yield bar

    @strawberry.subscription(description="Every trade update of your orders, with the order as it now stands.")
    async def order_updates(self, info: Info) -> AsyncGenerator[OrderUpdate, None]:
        user, claims = await _subscriber(info)
        feed = info.context.services.order_updates.subscribe(user.id)
        set_up()
        try:
            async for change in _until_expiry(info, claims, feed.changes()):
                yield OrderUpdate.from_change(change)
        finally:
            feed.close()

    @strawberry.subscription(
        description="Your positions and equity at live prices: again as quotes tick (a few times a second at most) "
        "and whenever an order fills."
    )
    async def portfolio(
        self, info: Info, connection_id: strawberry.ID | None = None
    ) -> AsyncGenerator[PortfolioUpdate, None]:
        services = info.context.services
        user, claims = await _subscriber(info)
        connection = await _connection(info, user, connection_id)
        broker = services.trading.broker(connection)

        async def holdings() -> tuple[domain.Account, list[domain.Position]]:
            return await services.trading.call(broker.get_account()), await services.trading.call(
                broker.list_positions()
            )

        orders = services.order_updates.subscribe(user.id)
        watch = PortfolioWatch(
            holdings,
            services.streams,
            ConnectionRef(user.id, connection.id),
            orders,
            feeds=lambda family: services.brokers.market_feed(connection, family),
            min_interval_seconds=1 / services.settings.portfolio_updates_per_second,
            now=services.clock.now,
        )
        set_up()
        try:
            async for snapshot in _until_expiry(info, claims, watch.updates()):
                yield PortfolioUpdate.from_snapshot(snapshot, connection.id, services.quote_source_of(broker))
        finally:
            orders.close()
