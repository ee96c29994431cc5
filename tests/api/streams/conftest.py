from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.brokers.paper.clock import ManualClock
from tests.utils.streams import StreamingServer, streaming_server


@pytest.fixture
async def server(tmp_path: Path, clock: ManualClock) -> AsyncIterator[StreamingServer]:
    async with streaming_server(tmp_path / "data", clock, stream_grace_seconds=0) as running:
        yield running
