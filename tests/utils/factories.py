"""Settings, clocks and apps for tests: offline, on a temporary SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from server.brokers.paper.clock import ManualClock
from server.models import Order
from server.settings import Settings

MARKET_OPEN = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
TEST_SEED = 7


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "market_seed": TEST_SEED,
        # The cheapest argon2id the settings allow: tests check behaviour, not hashing cost.
        "password_hash_time_cost": 1,
        "password_hash_memory_kib": 8 * 1024,
        **overrides,
    }
    # _env_file=None: a developer's .env must not leak into tests.
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def make_clock(start: datetime = MARKET_OPEN) -> ManualClock:
    return ManualClock(start)


def make_order_row(**fields: Any) -> Order:
    """A ledger row for a limit buy of 10 AAPL in flight; `fields` change it."""
    values: dict[str, Any] = {
        "user_id": "u",
        "connection_id": "c",
        "client_order_id": "cid-1",
        "symbol": "AAPL",
        "asset_class": "us_equity",
        "side": "buy",
        "order_type": "limit",
        "time_in_force": "day",
        "qty": Decimal(10),
        "limit_price": Decimal("230.00"),
        "status": "pending_new",
    }
    return Order(**(values | fields))
