"""One broker per stored broker connection, built on first use and kept.

Every broker built here reports its trade updates to `on_trade_update` from the start,
so the ledger hears about fills whether or not any client is watching.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from server.brokers.alpaca.stream import AlpacaStreams
from server.brokers.base import Broker, BrokerError
from server.brokers.domain import TradeUpdate
from server.brokers.paper.broker import PaperBrokers
from server.brokers.paper.feed import PaperFeed
from server.brokers.streaming import Family, MarketFeed
from server.models import BrokerConnection

PAPER_KIND = "PAPER"


@dataclass(frozen=True, slots=True)
class ConnectionRef:
    """Whose broker an update came from."""

    user_id: str
    connection_id: str


TradeUpdateSink = Callable[[ConnectionRef, TradeUpdate], None]


class UnsupportedBrokerError(BrokerError):
    def __init__(self, kind: str) -> None:
        super().__init__(f"Trading through {kind} connections is not available on this server yet.")
        self.kind = kind


class BrokerRegistry:
    def __init__(
        self,
        paper: PaperBrokers,
        on_trade_update: TradeUpdateSink,
        *,
        paper_symbol_limits: Mapping[Family, int] | None = None,
        alpaca_streams: AlpacaStreams | None = None,
        decrypt: Callable[[str], str] | None = None,
    ) -> None:
        self._paper = paper
        self._alpaca_streams = alpaca_streams
        self._decrypt = decrypt
        self._on_trade_update = on_trade_update
        self._paper_symbol_limits = dict(paper_symbol_limits or {})
        self._brokers: dict[str, Broker] = {}
        self._stop_listening: list[Callable[[], None]] = []

    def broker_for(self, connection: BrokerConnection) -> Broker:
        broker = self._brokers.get(connection.id)
        if broker is None:
            broker = self._build(connection)
            ref = ConnectionRef(connection.user_id, connection.id)
            self._stop_listening.append(broker.on_trade_update(lambda update: self._on_trade_update(ref, update)))
            self._brokers[connection.id] = broker
        return broker

    def _build(self, connection: BrokerConnection) -> Broker:
        if connection.kind == PAPER_KIND:
            return self._paper.broker(connection.id)
        raise UnsupportedBrokerError(connection.kind)

    def market_feed(self, connection: BrokerConnection, family: Family) -> MarketFeed:
        """A new feed of the connection's market data (the StreamHub keeps one per user)."""
        if connection.kind == PAPER_KIND:
            limit = self._paper_symbol_limits.get(family)
            return PaperFeed(self._paper.streams, connection.id, family, symbol_limit=limit)
        keys = (connection.api_key_ciphertext, connection.secret_key_ciphertext)
        if self._alpaca_streams is None or self._decrypt is None or keys[0] is None or keys[1] is None:
            raise UnsupportedBrokerError(connection.kind)
        return self._alpaca_streams.feed(family, self._decrypt(keys[0]), self._decrypt(keys[1]))

    def close(self) -> None:
        for stop in self._stop_listening:
            stop()
        self._stop_listening.clear()
        self._brokers.clear()
