"""AlpacaBrokers pointed at the paper exchange's Alpaca-compatible facade on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from server.brokers.alpaca.broker import AlpacaBroker, AlpacaBrokers
from server.brokers.alpaca.rest import AlpacaEndpoints, AlpacaKeys, CallPolicy
from server.streams.backoff import Backoff
from tests.utils.facade import KEY_ID, SECRET_KEY, Facade

FAST_BACKOFF = Backoff(first_seconds=0.05, max_seconds=0.2)


def facade_endpoints(facade: Facade) -> AlpacaEndpoints:
    return AlpacaEndpoints(
        trading_url=facade.url,
        data_url=facade.url,
        data_stream_url=f"ws://{facade.address}",
    )


def alpaca_brokers(facade: Facade, *, timeout_seconds: float = 5.0, max_threads: int = 4) -> AlpacaBrokers:
    return AlpacaBrokers(
        facade_endpoints(facade),
        policy=CallPolicy(timeout_seconds=timeout_seconds, backoff=FAST_BACKOFF),
        max_threads=max_threads,
        requests_per_minute=100_000,
    )


@asynccontextmanager
async def alpaca_broker(
    facade: Facade, *, key_id: str = KEY_ID, secret_key: str = SECRET_KEY, timeout_seconds: float = 5.0
) -> AsyncIterator[AlpacaBroker]:
    broker = alpaca_brokers(facade, timeout_seconds=timeout_seconds).broker(AlpacaKeys(key_id, secret_key))
    try:
        yield broker
    finally:
        await broker.close()
