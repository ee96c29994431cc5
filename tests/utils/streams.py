"""Subscriptions against a real uvicorn server, for tests: gql on both WebSocket
protocols, httpx on Apollo's multipart HTTP protocol, and the paper exchange's view."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.websockets import WebsocketsTransport
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.frames import Frame
from websockets.protocol import State
from websockets.uri import parse_uri

from server.app import create_app
from server.brokers.paper.clock import ManualClock
from server.brokers.paper.streams import PaperStreams, StreamSession
from server.services import Services
from tests.utils.accounts import SignedIn, as_user, bearer, register
from tests.utils.factories import make_settings
from tests.utils.live import live_server

TRANSPORT_WS = WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL  # graphql-transport-ws
LEGACY_WS = WebsocketsTransport.APOLLO_SUBPROTOCOL  # graphql-ws
WAIT_SECONDS = 5.0
CLOSE_SECONDS = 0.5
MULTIPART_ACCEPT = 'multipart/mixed;subscriptionSpec="1.0", application/json'


@dataclass
class StreamingServer:
    app: Starlette
    clock: ManualClock
    address: str
    http: httpx.AsyncClient

    @property
    def services(self) -> Services:
        return self.app.state.services

    @property
    def paper_streams(self) -> PaperStreams:
        return self.services.brokers._paper.streams

    async def sign_up(self, username: str) -> SignedIn:
        return await register(self.http, username)

    async def run(self, user: SignedIn, query: str, **variables: Any) -> dict[str, Any]:
        result = await as_user(self.http, user.access_token, query, variables)
        assert "errors" not in result, result
        return result["data"]

    async def default_connection(self, user: SignedIn) -> str:
        data = await self.run(user, "{ me { brokerConnections { id } } }")
        return data["me"]["brokerConnections"][0]["id"]

    def sessions_of(self, connection_id: str) -> list[StreamSession]:
        """The exchange's open stream sessions of one paper account (= broker connection)."""
        return self.paper_streams.sessions(connection_id)

    def tick(self, seconds: float = 1) -> None:
        """Move the market one step; the exchange's stream pulse publishes it."""
        self.clock.advance(seconds)


@asynccontextmanager
async def streaming_server(data_dir: Path, clock: ManualClock, **settings: Any) -> AsyncIterator[StreamingServer]:
    app = create_app(make_settings(data_dir, **settings), clock=clock)
    async with live_server(app) as address, httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as http:
        yield StreamingServer(app, clock, address, http)


@asynccontextmanager
async def ws_session(
    address: str, token: str | None, protocol: str = TRANSPORT_WS
) -> AsyncIterator[AsyncClientSession]:
    """A gql session over one WebSocket, signed in through connection_init."""
    transport = WebsocketsTransport(
        url=f"ws://{address}/graphql",
        init_payload={"authorization": f"Bearer {token}"} if token else {},
        subprotocols=[protocol],
        connect_timeout=WAIT_SECONDS,
        close_timeout=CLOSE_SECONDS,  # gql waits this long for operations still open at exit
    )
    async with Client(transport=transport, fetch_schema_from_transport=False) as session:
        yield session


async def eventually(condition: Callable[[], bool], within: float = WAIT_SECONDS) -> None:
    """Wait, bounded, for server-side state a test cannot be notified of."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110  (polls another component's state)
            await asyncio.sleep(0.01)


@dataclass
class StalledClient:
    """A graphql-transport-ws client that subscribes and then never reads again."""

    socket: socket.socket

    def close(self) -> None:
        self.socket.close()


async def stalled_client(address: str, token: str, query: str, variables: dict[str, Any]) -> StalledClient:
    """The WebSocket is spoken by hand (websockets' sans-I/O protocol on a raw socket with
    a tiny receive buffer), so that once subscribed nothing reads: the server's sends to
    it soon block, as they would for a stalled browser tab on a slow network."""
    loop = asyncio.get_running_loop()
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    host, port = address.split(":")
    protocol = ClientProtocol(parse_uri(f"ws://{address}/graphql"), subprotocols=[TRANSPORT_WS])  # type: ignore[list-item]
    protocol.send_request(protocol.connect())
    async with asyncio.timeout(WAIT_SECONDS):
        await loop.sock_connect(raw, (host, int(port)))

        async def send(message: dict[str, Any]) -> None:
            protocol.send_text(json.dumps(message).encode())
            await loop.sock_sendall(raw, b"".join(protocol.data_to_send()))

        await loop.sock_sendall(raw, b"".join(protocol.data_to_send()))
        while protocol.state is not State.OPEN:
            protocol.receive_data(await loop.sock_recv(raw, 65536))
        await send({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        acknowledged = False
        while not acknowledged:
            acknowledged = any(
                isinstance(event, Frame) and b"connection_ack" in event.data for event in protocol.events_received()
            )
            if not acknowledged:
                protocol.receive_data(await loop.sock_recv(raw, 65536))
        await send({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}})
    return StalledClient(raw)


class Stream:
    """One subscription's results, read with a bound on every wait."""

    def __init__(self, session: AsyncClientSession, query: str, **variables: Any) -> None:
        self._results = session.subscribe(GraphQLRequest(query, variable_values=variables))
        self._pending: asyncio.Task[dict[str, Any]] | None = None

    def start(self) -> None:
        """Send the subscription now (gql sends it on the first read), reading in the background."""
        if self._pending is None:
            self._pending = asyncio.ensure_future(anext(self._results))

    async def next(self, within: float = WAIT_SECONDS) -> dict[str, Any]:
        self.start()
        assert self._pending is not None
        async with asyncio.timeout(within):
            try:
                return await asyncio.shield(self._pending)
            finally:
                if self._pending.done():
                    self._pending = None

    async def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
        await self._results.aclose()  # type: ignore[attr-defined]


async def multipart_events(
    address: str, token: str, query: str, variables: dict[str, Any] | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Apollo's multipart subscription over HTTP: each part's JSON, as it arrives."""
    body = {"query": query, "variables": variables or {}}
    headers = {**bearer(token), "Accept": MULTIPART_ACCEPT}
    async with (
        httpx.AsyncClient(base_url=f"http://{address}", timeout=WAIT_SECONDS) as http,
        http.stream("POST", "/graphql", json=body, headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("multipart/mixed")
        buffer = ""
        async for chunk in response.aiter_text():
            buffer += chunk
            while "\r\n\r\n" in buffer:
                head, _, rest = buffer.partition("\r\n\r\n")
                end = rest.find("\r\n--")
                if end < 0:
                    break
                part, buffer = rest[:end], rest[end:]
                if "application/json" in head and part.strip() and part.strip() != "{}":
                    yield json.loads(part)


RAW_QUOTES = "subscription($symbols: [String!]!) { quotes(symbols: $symbols) { symbol bidPrice askPrice timestamp } }"


class RawSession:
    """One WebSocket spoken by hand, so a test sees every message as it was sent."""

    def __init__(self, socket: ClientConnection, protocol: str) -> None:
        self.socket = socket
        self.protocol = protocol

    async def start(self, operation_id: str, symbols: list[str]) -> None:
        """Subscribe to `symbols`' quotes (RAW_QUOTES)."""
        await self.send(operation_id, RAW_QUOTES, {"symbols": symbols})

    async def send(self, operation_id: str, query: str, variables: dict[str, Any] | None = None) -> None:
        start = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        payload = {"query": query, "variables": variables or {}}
        await self.socket.send(json.dumps({"id": operation_id, "type": start, "payload": payload}))

    async def stop(self, operation_id: str) -> None:
        stop = "complete" if self.protocol == TRANSPORT_WS else "stop"
        await self.socket.send(json.dumps({"id": operation_id, "type": stop}))

    async def text(self) -> str:
        """The next message but keep-alives, as sent."""
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                message = await self.socket.recv()
                assert isinstance(message, str)
                if json.loads(message)["type"] != "ka":
                    return message

    async def message(self) -> dict[str, Any]:
        return cast(dict[str, Any], json.loads(await self.text()))


@asynccontextmanager
async def raw_session(address: str, token: str, protocol: str) -> AsyncIterator[RawSession]:
    async with asyncio.timeout(WAIT_SECONDS):
        socket = await connect(f"ws://{address}/graphql", subprotocols=[protocol])  # type: ignore[list-item]
    try:
        session = RawSession(socket, protocol)
        await socket.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}))
        assert (await session.message())["type"] == "connection_ack"
        yield session
    finally:
        await socket.close()
