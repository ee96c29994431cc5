"""The long-lived objects of one server process, built and torn down by the app's lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from server.brokers.base import QuoteSource
from server.brokers.paper.clock import Clock, WallClock
from server.brokers.paper.market import MarketSimulator
from server.brokers.paper.market_data import PaperQuoteSource
from server.db import create_engine, session_factory, upgrade_database_async
from server.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    market: MarketSimulator
    quote_source: QuoteSource


@asynccontextmanager
async def run_services(settings: Settings, *, clock: Clock | None = None) -> AsyncIterator[Services]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.auto_migrate:
        await upgrade_database_async(settings.database_url)
        logger.info("database migrated", extra={"dialect": settings.database_url.split(":", 1)[0]})
    engine = create_engine(settings.database_url)
    clock = clock or WallClock()
    market = MarketSimulator(clock, seed=settings.market_seed, tick_seconds=settings.market_tick_seconds)
    try:
        yield Services(
            settings=settings,
            engine=engine,
            sessions=session_factory(engine),
            clock=clock,
            market=market,
            quote_source=PaperQuoteSource(market),
        )
    finally:
        await engine.dispose()
