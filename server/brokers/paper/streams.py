"""The paper exchange's own market-data streams, for brokers in this process.

A session is what an Alpaca stream connection is to Alpaca: opened per account and feed
family (one at a time, like Alpaca's 406), holding the symbols it subscribed per channel,
fed whenever the market reaches a new step. One pulse task serves every session (it looks
every PULSE_SECONDS, and just as each step begins on the wall clock): each
step's quotes, trades and bars are computed once for the symbols anyone wants, and every
session receives the same objects. `drop_all` is the fault a test injects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from server.brokers.paper.exchange import PaperExchange
from server.brokers.streaming import Channel, EventSink, Family, MarketEvent

logger = logging.getLogger(__name__)
PULSE_SECONDS = 0.02
STEP_SLACK_SECONDS = 0.001  # wake this far past a step's start, so the step has begun


class StreamLimitError(Exception):
    """The account already has a stream of this family open (Alpaca's 406)."""


@dataclass(eq=False)
class StreamSession:
    account_id: str
    family: Family
    deliver: EventSink
    on_drop: Callable[[], None]
    channels: dict[Channel, set[str]] = field(default_factory=lambda: {channel: set() for channel in Channel})
    open: bool = True
    sent: dict[tuple[Channel, str], MarketEvent] = field(default_factory=dict)  # the last of each, not resent

    def fresh(self, events: Iterable[tuple[Channel, MarketEvent]]) -> list[tuple[Channel, MarketEvent]]:
        """The events this session has not been sent yet, now marked as sent."""
        unsent = [(channel, event) for channel, event in events if self.sent.get((channel, event.symbol)) != event]
        for channel, event in unsent:
            self.sent[(channel, event.symbol)] = event
        return unsent

    def symbols(self) -> set[str]:
        return set().union(*self.channels.values())


class PaperStreams:
    def __init__(self, exchange: PaperExchange) -> None:
        self._exchange = exchange
        self._sessions: dict[tuple[str, Family], StreamSession] = {}
        self._task: asyncio.Task[None] | None = None
        self.opened = 0  # sessions ever opened: reconnects show here

    # ----- the upstream's view ------------------------------------------------------------

    def sessions(self, account_id: str | None = None) -> list[StreamSession]:
        return [s for s in self._sessions.values() if account_id is None or s.account_id == account_id]

    def drop_all(self) -> int:
        """Fault injection: cut every open session; the holders see a dropped connection."""
        dropped = list(self._sessions.values())
        self._sessions.clear()
        for session in dropped:
            session.open = False
            session.on_drop()
        return len(dropped)

    # ----- what a client does -------------------------------------------------------------

    def open(self, account_id: str, family: Family, deliver: EventSink, on_drop: Callable[[], None]) -> StreamSession:
        key = (account_id, family)
        if key in self._sessions:
            raise StreamLimitError(f"a {family.value} stream is already open for this account")
        session = StreamSession(account_id, family, deliver, on_drop)
        self._sessions[key] = session
        self.opened += 1
        return session

    def close(self, session: StreamSession) -> None:
        session.open = False
        if self._sessions.get((session.account_id, session.family)) is session:
            del self._sessions[(session.account_id, session.family)]

    def subscribe(self, session: StreamSession, channel: Channel, symbols: Iterable[str]) -> None:
        """Add symbols; each one's latest data goes out at once, so a new subscriber need not wait a tick."""
        fresh = [s for s in symbols if s not in session.channels[channel]]
        session.channels[channel].update(fresh)
        if fresh and session.open:
            self._exchange.advance()
            events = session.fresh((channel, event) for event in self._latest(channel, fresh) if event is not None)
            if events:
                session.deliver(events)

    def unsubscribe(self, session: StreamSession, channel: Channel, symbols: Iterable[str]) -> None:
        gone = set(symbols)
        session.channels[channel].difference_update(gone)
        for symbol in gone:
            session.sent.pop((channel, symbol), None)

    # ----- the pulse ----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="paper-streams")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        market = self._exchange.market
        last_step = market.current_step()
        while True:
            await asyncio.sleep(self._until_next_look())
            step = market.current_step()
            if step == last_step or not self._sessions:
                last_step = step
                continue
            last_step = step
            try:
                self.publish()
            except Exception:
                logger.exception("paper stream pulse failed")

    def _until_next_look(self) -> float:
        """Every PULSE_SECONDS, but just past the next step's start when that comes sooner:
        on the wall clock a step is published as it begins, not up to a pulse later. (A
        manual clock stands still meanwhile, so tests that step it are seen within a pulse.)"""
        market = self._exchange.market
        into_step = (market.clock.now() - market.epoch) % market.tick
        return min(PULSE_SECONDS, (market.tick - into_step).total_seconds() + STEP_SLACK_SECONDS)

    def publish(self) -> None:
        """Send every session what changed since it was last sent, computed once per symbol."""
        self._exchange.advance()
        wanted: dict[Channel, set[str]] = {channel: set() for channel in Channel}
        for session in self._sessions.values():
            for channel, symbols in session.channels.items():
                wanted[channel] |= symbols
        latest: dict[tuple[Channel, str], MarketEvent] = {}
        for channel, symbols in wanted.items():
            for event in self._latest(channel, list(symbols)):
                if event is not None:
                    latest[(channel, event.symbol)] = event
        for session in list(self._sessions.values()):
            mine = (
                (channel, latest[(channel, symbol)])
                for channel, symbols in session.channels.items()
                for symbol in symbols
                if (channel, symbol) in latest
            )
            events = session.fresh(mine)
            if events and session.open:
                session.deliver(events)

    def _latest(self, channel: Channel, symbols: Sequence[str]) -> list[MarketEvent | None]:
        exchange = self._exchange
        if channel is Channel.QUOTES:
            quotes = exchange.quotes(symbols)
            return [quotes[symbol] for symbol in symbols]
        market = exchange.market
        if channel is Channel.TRADES:
            return [market.latest_trade(symbol) if market.has_symbol(symbol) else None for symbol in symbols]
        return [market.latest_minute_bar(symbol) if market.has_symbol(symbol) else None for symbol in symbols]
