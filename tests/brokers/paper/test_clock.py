from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from server.brokers.paper.clock import ManualClock, WallClock


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(datetime(2026, 1, 2, 15, tzinfo=UTC))
    assert clock.now() == datetime(2026, 1, 2, 15, tzinfo=UTC)
    clock.advance(1.5)
    clock.advance(timedelta(minutes=1))
    assert clock.now() == datetime(2026, 1, 2, 15, 1, 1, 500000, tzinfo=UTC)


def test_manual_clock_keeps_utc() -> None:
    clock = ManualClock(datetime(2026, 1, 2, 10, tzinfo=timezone(timedelta(hours=-5))))
    assert clock.now() == datetime(2026, 1, 2, 15, tzinfo=UTC)
    assert clock.now().tzinfo is UTC


def test_manual_clock_refuses_naive_times_and_going_back() -> None:
    with pytest.raises(ValueError, match="aware"):
        ManualClock(datetime(2026, 1, 2))  # noqa: DTZ001 - the point of the test
    clock = ManualClock(datetime(2026, 1, 2, tzinfo=UTC))
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


def test_wall_clock_is_aware_utc() -> None:
    assert WallClock().now().tzinfo is UTC
