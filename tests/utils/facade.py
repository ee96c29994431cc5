"""The Alpaca-compatible facade served on loopback, for tests that drive alpaca-py against it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from server.brokers.paper.facade.access import Faults, KeyPair, KeyStore
from server.brokers.paper.facade.app import create_facade
from tests.utils.live import live_server
from tests.utils.paper import PaperWorld

KEY_ID = "PKTEST0000000000001"
SECRET_KEY = "paper-secret-for-tests-only-0001"
FAULT_TOKEN = "fault-token-for-tests"


@dataclass
class Facade:
    address: str
    world: PaperWorld
    faults: Faults
    keys: KeyStore

    @property
    def url(self) -> str:
        return f"http://{self.address}"


@asynccontextmanager
async def serve_facade(
    world: PaperWorld, *, rate_limit_per_minute: int | None = None, more_keys: tuple[KeyPair, ...] = ()
) -> AsyncIterator[Facade]:
    keys = KeyStore([KeyPair(KEY_ID, SECRET_KEY, world.account_id), *more_keys])
    faults = Faults()
    app = create_facade(
        world.exchange, keys, faults=faults, rate_limit_per_minute=rate_limit_per_minute, fault_token=FAULT_TOKEN
    )
    async with live_server(app) as address:
        yield Facade(address, world, faults, keys)
