"""One broker per stored broker connection, built on first use and kept.

Every broker built here reports its trade updates to `on_trade_update` from the start,
so the ledger hears about fills whether or not any client is watching.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from server.brokers.alpaca.broker import AlpacaBroker, AlpacaBrokers
from server.brokers.alpaca.rest import AlpacaKeys
from server.brokers.alpaca.stream import AlpacaStreams
from server.brokers.base import Broker, BrokerError
from server.brokers.domain import TradeUpdate
from server.brokers.paper.broker import PaperBrokers
from server.brokers.paper.feed import PaperFeed
from server.brokers.streaming import Family, MarketFeed
from server.metrics import UpstreamStream
from server.models import BrokerConnection

PAPER_KIND = "PAPER"
ALPACA_LIVE_KIND = "ALPACA_LIVE"


@dataclass(frozen=True, slots=True)
class ConnectionRef:
    """Whose broker an update came from."""

    user_id: str
    connection_id: str


TradeUpdateSink = Callable[[ConnectionRef, TradeUpdate], None]
Resync = Callable[[BrokerConnection], Awaitable[object]]


class UnsupportedBrokerError(BrokerError):
    def __init__(self, kind: str) -> None:
        super().__init__(f"Trading through {kind} connections is not available on this server yet.")
        self.kind = kind


class LiveTradingDisabledError(UnsupportedBrokerError):
    def __init__(self) -> None:
        BrokerError.__init__(self, "Live trading is not enabled on this server.")
        self.kind = ALPACA_LIVE_KIND


class BrokerRegistry:
    def __init__(
        self,
        paper: PaperBrokers,
        on_trade_update: TradeUpdateSink,
        *,
        paper_symbol_limits: Mapping[Family, int] | None = None,
        alpaca: AlpacaBrokers | None = None,
        alpaca_streams: AlpacaStreams | None = None,
        decrypt: Callable[[str], str] | None = None,
        allow_live: bool = False,
        trade_stream_gauge: Callable[[str], UpstreamStream] | None = None,
    ) -> None:
        """`trade_stream_gauge`: the gauge of an Alpaca connection's trade-updates stream, by the connection's kind."""
        self._paper = paper
        self._trade_stream_gauge = trade_stream_gauge
        self._allow_live = allow_live
        self._alpaca = alpaca
        self._alpaca_streams = alpaca_streams
        self._decrypt = decrypt
        self._on_trade_update = on_trade_update
        self._paper_symbol_limits = dict(paper_symbol_limits or {})
        self._brokers: dict[str, Broker] = {}
        self._stop_listening: list[Callable[[], None]] = []
        # What to do after a broker's trade-updates stream comes back: fetch what it missed.
        self.resync: Resync | None = None

    def broker_for(self, connection: BrokerConnection) -> Broker:
        broker = self._brokers.get(connection.id)
        if broker is None:
            broker = self._build(connection)
            ref = ConnectionRef(connection.user_id, connection.id)
            self._stop_listening.append(broker.on_trade_update(lambda update: self._on_trade_update(ref, update)))
            self._brokers[connection.id] = broker
        return broker

    def built(self, connection_id: str) -> Broker | None:
        """The connection's broker if one has been built (no database read)."""
        return self._brokers.get(connection_id)

    def _build(self, connection: BrokerConnection) -> Broker:
        if connection.kind == PAPER_KIND:
            return self._paper.broker(connection.id)
        if self._alpaca is None:
            raise UnsupportedBrokerError(connection.kind)
        if connection.kind == ALPACA_LIVE_KIND and not self._allow_live:
            raise LiveTradingDisabledError
        gauge = self._trade_stream_gauge(connection.kind) if self._trade_stream_gauge is not None else None
        return self._alpaca.broker(
            self._keys(connection), on_resume=lambda: self._resync(connection), stream_gauge=gauge
        )

    async def _resync(self, connection: BrokerConnection) -> None:
        if self.resync is not None:
            await self.resync(connection)

    def _keys(self, connection: BrokerConnection) -> AlpacaKeys:
        keys = (connection.api_key_ciphertext, connection.secret_key_ciphertext)
        if self._decrypt is None or keys[0] is None or keys[1] is None:
            raise UnsupportedBrokerError(connection.kind)
        paper = connection.kind != ALPACA_LIVE_KIND
        return AlpacaKeys(self._decrypt(keys[0]), self._decrypt(keys[1]), paper=paper)

    def market_feed(self, connection: BrokerConnection, family: Family) -> MarketFeed:
        """A new feed of the connection's market data (the StreamHub keeps one per user)."""
        if connection.kind == PAPER_KIND:
            limit = self._paper_symbol_limits.get(family)
            return PaperFeed(self._paper.streams, connection.id, family, symbol_limit=limit)
        if self._alpaca_streams is None:
            raise UnsupportedBrokerError(connection.kind)
        keys = self._keys(connection)
        return self._alpaca_streams.feed(family, keys.api_key, keys.secret_key)

    async def close(self) -> None:
        for stop in self._stop_listening:
            stop()
        self._stop_listening.clear()
        brokers = [b for b in self._brokers.values() if isinstance(b, AlpacaBroker)]
        self._brokers.clear()
        await asyncio.gather(*(broker.close() for broker in brokers))
