"""A real uvicorn server inside the test's event loop, on a free loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.applications import Starlette

from server.__main__ import UVICORN_OPTIONS

START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 10.0


@asynccontextmanager
async def live_server(app: Starlette) -> AsyncIterator[str]:
    """Serve `app` (lifespan included) on 127.0.0.1 at a free port; yield its base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        **UVICORN_OPTIONS,  # as the server runs
        timeout_graceful_shutdown=int(STOP_TIMEOUT_SECONDS / 2),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(START_TIMEOUT_SECONDS):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, STOP_TIMEOUT_SECONDS)
