"""`testConnection`: the caller's broker connections checked live."""

from __future__ import annotations

import asyncio

import strawberry

from server.api.auth import signed_in_user
from server.api.context import Info
from server.api.errors import api_error_of
from server.api.users.types import BrokerConnection
from server.brokers.base import BrokerError
from server.brokers.registry import PAPER_KIND
from server.models import BrokerConnection as BrokerConnectionRow
from server.trading.connection_check import ConnectionCheck, Feeds, check_connection

PAPER_FEEDS = Feeds(stocks="paper", options="paper")


@strawberry.type(description="What a live check of one broker connection found.")
class ConnectionTest:
    connection: BrokerConnection
    reachable: bool = strawberry.field(description="The broker answered with the stored keys.")
    latency_ms: float | None = strawberry.field(description="How long the account request took.")
    account_status: str | None
    account_number: str | None
    market_data: bool = strawberry.field(description="A latest quote came through on the connection's feed.")
    market_open: bool | None
    stock_feed: str | None = strawberry.field(description="iex or sip for Alpaca; paper for the paper exchange.")
    option_feed: str | None
    problem_code: str | None = strawberry.field(
        description="The error code a failed check would answer with (e.g. BROKER_AUTH_FAILED, BROKER_UNAVAILABLE)."
    )
    problem: str | None

    @classmethod
    def from_check(cls, check: ConnectionCheck) -> ConnectionTest:
        problem = api_error_of(check.failure) if check.failure is not None else None
        return cls(
            connection=BrokerConnection.from_row(check.connection),
            reachable=check.reachable,
            latency_ms=check.latency_ms,
            account_status=check.account_status,
            account_number=check.account_number,
            market_data=check.market_data,
            market_open=check.market_open,
            stock_feed=check.stock_feed,
            option_feed=check.option_feed,
            problem_code=problem.code.value if problem is not None else None,
            problem=problem.message if problem is not None else None,
        )


@strawberry.type
class ConnectionTestQuery:
    @strawberry.field(
        description="Check your broker connections live (or only the one named): reachability, account, market data."
    )
    async def test_connection(self, info: Info, connection_id: strawberry.ID | None = None) -> list[ConnectionTest]:
        user = await signed_in_user(info)
        services = info.context.services
        trading = services.trading
        if connection_id is not None:
            connections = [await trading.connection(user.id, str(connection_id))]
        else:
            connections = await services.connections.of_user(user.id)
        settings = services.settings
        alpaca_feeds = Feeds(stocks=settings.alpaca_stock_feed, options=settings.alpaca_option_feed)

        async def check(connection: BrokerConnectionRow) -> ConnectionCheck:
            feeds = PAPER_FEEDS if connection.kind == PAPER_KIND else alpaca_feeds
            try:
                broker = trading.broker(connection)
            except BrokerError as error:  # e.g. live trading switched off since the connection was made
                return ConnectionCheck(connection, reachable=False, failure=error)
            return await check_connection(connection, broker, feeds, trading.call)

        checks = await asyncio.gather(*(check(connection) for connection in connections))
        return [ConnectionTest.from_check(found) for found in checks]
