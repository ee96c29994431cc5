"""The long-lived objects of one server process, built and torn down by the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from server.brokers.alpaca.broker import AlpacaBrokers, AlpacaMarketData
from server.brokers.alpaca.keys import AlpacaKeyChecker
from server.brokers.alpaca.rest import AlpacaEndpoints, AlpacaKeys, CallPolicy
from server.brokers.alpaca.stream import AlpacaStreams
from server.brokers.base import QuoteSource
from server.brokers.paper.broker import PaperBrokers
from server.brokers.paper.calendar import make_calendar
from server.brokers.paper.clock import Clock, WallClock
from server.brokers.paper.exchange import PaperExchange
from server.brokers.paper.market import MarketSimulator
from server.brokers.paper.market_data import PaperMarket
from server.brokers.registry import BrokerRegistry
from server.brokers.streaming import Family
from server.db import create_engine, create_read_engine, session_factory, upgrade_database_async
from server.metrics import Metrics
from server.metrics.labels import connection_kind
from server.quick_reads import QuickReads, open_quick_reads
from server.security.passwords import HashingParameters, PasswordService
from server.security.ratelimit import RateLimits
from server.security.secrets import ServerSecrets, resolve_secrets
from server.security.tokens import AccessTokens
from server.security.vault import Vault
from server.settings import Settings
from server.streams.hub import StreamHub
from server.streams.orders import OrderUpdates
from server.trading.history import OrderHistory
from server.trading.ledger import LedgerWriter
from server.trading.restore import restore_paper_accounts
from server.trading.service import TradingService
from server.users.admin import RiskLimits, UserAdmin
from server.users.brokers import BrokerConnections
from server.users.service import UserService

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    read_sessions: async_sessionmaker[AsyncSession]  # for reads only: beside the writer where the database allows
    clock: Clock
    market: MarketSimulator
    exchange: PaperExchange
    quote_source: QuoteSource
    market_data: PaperMarket | AlpacaMarketData  # the server's own market: for callers not signed in
    paper_market: PaperMarket
    passwords: PasswordService
    access_tokens: AccessTokens
    vault: Vault
    users: UserService
    admin: UserAdmin
    connections: BrokerConnections
    limits: RateLimits
    brokers: BrokerRegistry
    trading: TradingService
    history: OrderHistory
    streams: StreamHub
    order_updates: OrderUpdates
    metrics: Metrics  # this app's own registry: apps in one process never share series

    def quote_source_of(self, broker: object) -> QuoteSource | None:
        """Where the quotes of a broker's positions and contracts come from; None: the server's market."""
        if isinstance(broker, AlpacaMarketData):
            return broker  # the user's own keys and data plan
        return None if self.market_data is self.paper_market else self.paper_market

    async def quotes_for(self, connection_id: str) -> QuoteSource | None:
        broker = self.brokers.built(connection_id)
        if broker is None:
            broker = self.trading.broker(await self.trading.connection_by_id(connection_id))
        return self.quote_source_of(broker)


@asynccontextmanager
async def run_services(
    settings: Settings, *, clock: Clock | None = None, secrets: ServerSecrets | None = None
) -> AsyncIterator[Services]:
    """`secrets`, when the caller has resolved them already (the CLI does, to refuse early)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    secrets = secrets or resolve_secrets(settings)  # refuses to go on in production without real secrets
    if settings.auto_migrate:
        await upgrade_database_async(settings.database_url)
        logger.info("database migrated", extra={"dialect": settings.database_url.split(":", 1)[0]})
    engine = create_engine(settings.database_url)
    read_engine = create_read_engine(settings.database_url)
    try:
        quick_reads = await open_quick_reads(read_engine or engine)
        try:
            async with _services(settings, secrets, clock, engine, read_engine, quick_reads) as services:
                yield services
        finally:
            await quick_reads.close()
    finally:
        if read_engine is not None:  # first: the writer, closing last, checkpoints the WAL
            await read_engine.dispose()
        await engine.dispose()


@asynccontextmanager
async def _services(
    settings: Settings,
    secrets: ServerSecrets,
    clock: Clock | None,
    engine: AsyncEngine,
    read_engine: AsyncEngine | None,
    quick_reads: QuickReads,
) -> AsyncIterator[Services]:
    """Everything built on the databases, stopped in turn when the block ends."""
    wall_clock = clock is None
    clock = clock or WallClock()
    market = MarketSimulator(clock, seed=settings.market_seed, tick_seconds=settings.market_tick_seconds)
    exchange = PaperExchange(market, make_calendar(settings.market_hours), starting_cash=settings.paper_starting_cash)
    sessions = session_factory(engine)
    read_sessions = session_factory(read_engine) if read_engine is not None else sessions
    passwords = PasswordService(
        HashingParameters(time_cost=settings.password_hash_time_cost, memory_cost=settings.password_hash_memory_kib),
        max_concurrent=settings.password_hash_threads or max(1, (os.cpu_count() or 2) - 1),
    )
    access_tokens = AccessTokens(
        secrets.jwt_secret,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        lifetime=timedelta(minutes=settings.access_token_minutes),
        now=clock.now,
    )
    vault = Vault(secrets.fernet_keys)
    metrics = Metrics()
    limits = RateLimits.from_settings(settings, on_refused=metrics.rate_limited)
    paper_market = PaperMarket(exchange)
    alpaca = alpaca_brokers(settings, metrics)
    market_data = server_market(settings, alpaca) or paper_market
    order_updates = OrderUpdates()
    ledger_writer = LedgerWriter(engine, now=clock.now, on_change=order_updates.publish, metrics=metrics)
    paper_brokers = PaperBrokers(exchange)
    registry = BrokerRegistry(
        paper_brokers,
        on_trade_update=ledger_writer.push,
        paper_symbol_limits={
            Family.STOCKS: settings.paper_stream_stock_symbols,
            Family.OPTIONS: settings.paper_stream_option_symbols,
        },
        alpaca=alpaca,
        alpaca_streams=AlpacaStreams(
            alpaca.endpoints.data_stream_url, alpaca.endpoints.stock_feed, alpaca.endpoints.option_feed
        ),
        decrypt=vault.decrypt,
        allow_live=settings.allow_live_trading,
        trade_stream_gauge=lambda kind: metrics.upstream(connection_kind(kind), "trade_updates"),
    )
    streams = StreamHub(grace_seconds=settings.stream_grace_seconds, metrics=metrics)
    trading = TradingService(
        sessions,
        read_sessions,
        quick_reads,
        registry,
        ledger_writer,
        risk_defaults=RiskLimits(
            max_order_notional=settings.risk_max_order_notional,
            max_position_notional=settings.risk_max_position_notional,
            price_band_percent=settings.risk_price_band_percent,
        ),
        broker_timeout_seconds=settings.broker_timeout_seconds,
        now=clock.now,
        metrics=metrics,
    )
    registry.resync = trading.sync_connection
    # On the wall clock the market ticks by itself; tests with a manual clock step it.
    ticker = asyncio.create_task(run_ticker(exchange, settings.market_tick_seconds)) if wall_clock else None
    ledger_writer.start()
    paper_brokers.streams.start()
    try:
        await restore_paper_accounts(sessions, registry)
        await trading.reconcile()
        yield Services(
            settings=settings,
            engine=engine,
            sessions=sessions,
            read_sessions=read_sessions,
            clock=clock,
            market=market,
            exchange=exchange,
            quote_source=market_data,
            market_data=market_data,
            paper_market=paper_market,
            passwords=passwords,
            access_tokens=access_tokens,
            vault=vault,
            users=UserService(
                sessions,
                passwords,
                access_tokens,
                failures=limits.login_username,
                refresh_lifetime=timedelta(days=settings.refresh_token_days),
                now=clock.now,
            ),
            admin=UserAdmin(sessions, now=clock.now),
            connections=BrokerConnections(
                sessions,
                vault,
                AlpacaKeyChecker(alpaca),
                allow_live=settings.allow_live_trading,
                now=clock.now,
            ),
            limits=limits,
            brokers=registry,
            trading=trading,
            history=OrderHistory(read_sessions),
            streams=streams,
            order_updates=order_updates,
            metrics=metrics,
        )
    finally:
        await streams.close()
        await paper_brokers.streams.stop()
        await ledger_writer.stop()
        await registry.close()
        alpaca.close()
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker


def alpaca_brokers(settings: Settings, metrics: Metrics | None = None) -> AlpacaBrokers:
    endpoints = AlpacaEndpoints(
        trading_url=settings.alpaca_trading_url,
        data_url=settings.alpaca_data_url,
        trading_stream_url=settings.alpaca_trading_stream_url,
        data_stream_url=settings.alpaca_data_stream_url,
        stock_feed=settings.alpaca_stock_feed,
        option_feed=settings.alpaca_option_feed,
    )
    return AlpacaBrokers(
        endpoints,
        policy=CallPolicy(
            timeout_seconds=settings.broker_timeout_seconds,
            on_attempt=metrics.alpaca_request if metrics is not None else None,
        ),
        max_threads=settings.alpaca_max_threads,
        requests_per_minute=settings.alpaca_requests_per_minute,
    )


def server_market(settings: Settings, alpaca: AlpacaBrokers) -> AlpacaMarketData | None:
    """Alpaca's market data on the server's own keys, when it has them."""
    if settings.alpaca_api_key is None or settings.alpaca_secret_key is None:
        return None
    keys = AlpacaKeys(settings.alpaca_api_key.get_secret_value(), settings.alpaca_secret_key.get_secret_value())
    return AlpacaMarketData(alpaca.rest(keys), alpaca.endpoints)


async def run_ticker(exchange: PaperExchange, tick_seconds: float) -> None:
    """Step every symbol and work open orders once a tick, so the tape has no gaps."""
    while True:
        await asyncio.sleep(tick_seconds)
        try:
            exchange.advance()  # work every step first; then move the symbols nobody trades
            exchange.market.advance_all()
        except Exception:
            logger.exception("market tick failed")
