from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from server.app import create_app
from server.brokers.paper.clock import ManualClock
from server.settings import Settings
from tests.utils.trading import LiveTrader, live_trader


@pytest.fixture
async def trader(settings: Settings, clock: ManualClock) -> AsyncIterator[LiveTrader]:
    """A signed-in user of a real uvicorn server, through gql."""
    async with live_trader(create_app(settings, clock=clock), clock) as signed_in:
        yield signed_in
