"""Paper accounts rebuilt from the ledger at start-up.

The embedded exchange keeps its state in memory. The ledger, though, has every fill of
every paper order (price and quantity, in order), so replaying them rebuilds each paper
account's cash, positions and realized P&L exactly as they were. Resting orders are not
replayed: reconciliation ends them as BROKER_LOST, and their holders can place them again.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.brokers.base import UnknownSymbolError
from server.brokers.domain import OrderSide
from server.brokers.paper.broker import PaperBroker
from server.brokers.registry import PAPER_KIND, BrokerRegistry
from server.models import BrokerConnection, OrderEvent
from server.models import Order as OrderRow

logger = logging.getLogger(__name__)
FILL_EVENTS = ("fill", "partial_fill")


async def restore_paper_accounts(sessions: async_sessionmaker[AsyncSession], registry: BrokerRegistry) -> int:
    """Replay every recorded paper fill into its account; returns how many were replayed."""
    query = (
        select(BrokerConnection, OrderRow.symbol, OrderRow.side, OrderEvent.qty, OrderEvent.price)
        .join(OrderRow, col(OrderRow.connection_id) == col(BrokerConnection.id))
        .join(OrderEvent, col(OrderEvent.order_id) == col(OrderRow.id))
        .where(
            BrokerConnection.kind == PAPER_KIND,
            col(OrderEvent.event).in_(FILL_EVENTS),
            col(OrderEvent.qty).is_not(None),
            col(OrderEvent.price).is_not(None),
        )
        .order_by(col(OrderEvent.id))
    )
    async with sessions() as session:
        fills = (await session.exec(query)).all()
    replayed = 0
    for connection, symbol, side, qty, price in fills:
        broker = registry.broker_for(connection)
        assert isinstance(broker, PaperBroker)
        try:
            broker.restore_fill(symbol, OrderSide(side), Decimal(qty), Decimal(price))
        except UnknownSymbolError:  # an option contract no longer listed: it has been settled
            logger.warning("paper fill of %s not replayed: the symbol is no longer listed", symbol)
            continue
        replayed += 1
    if replayed:
        logger.info("paper accounts rebuilt from the ledger", extra={"fills": replayed})
    return replayed
