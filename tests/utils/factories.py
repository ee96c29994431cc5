"""Settings, clocks and apps for tests: offline, on a temporary SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from server.brokers.paper.clock import ManualClock
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
