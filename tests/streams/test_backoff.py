"""Reconnect delays: exponential, capped, with full jitter in the upper half of each step."""

from __future__ import annotations

import random

import pytest

from server.streams.backoff import Backoff

BACKOFF = Backoff(first_seconds=0.2, max_seconds=10.0, factor=2.0)


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 0.2), (2, 0.4), (3, 0.8), (4, 1.6), (6, 6.4), (7, 10.0), (50, 10.0)],
)
def test_delay_is_jittered_below_a_doubling_capped_ceiling(attempt: int, ceiling: float) -> None:
    rng = random.Random(attempt)
    delays = [BACKOFF.delay(attempt, rng) for _ in range(200)]
    assert min(delays) >= ceiling / 2
    assert max(delays) <= ceiling
    assert max(delays) - min(delays) > ceiling / 4  # jittered, not fixed


@pytest.mark.parametrize("attempt", [0, -3])
def test_attempts_before_the_first_wait_like_the_first(attempt: int) -> None:
    delay = BACKOFF.delay(attempt, random.Random(1))
    assert 0.1 <= delay <= 0.2


def test_the_same_generator_gives_the_same_delays() -> None:
    first = [BACKOFF.delay(n, random.Random(42)) for n in range(1, 8)]
    again = [BACKOFF.delay(n, random.Random(42)) for n in range(1, 8)]
    assert first == again


def test_without_a_generator_delays_stay_in_range() -> None:
    for _ in range(100):
        assert 5.0 <= BACKOFF.delay(20) <= 10.0


def test_clients_do_not_retry_in_step() -> None:
    delays = {round(BACKOFF.delay(3, random.Random(seed)), 6) for seed in range(20)}
    assert len(delays) > 15


def test_tiny_backoff_for_tests_stays_tiny() -> None:
    fast = Backoff(first_seconds=0.001, max_seconds=0.01)
    assert all(fast.delay(n) <= 0.01 for n in range(1, 20))


@pytest.mark.parametrize(("attempt", "lasted", "expected"), [(0, 0.5, 1), (3, 0.5, 4), (5, 30.0, 1), (5, 120.0, 1)])
def test_only_a_session_that_lasted_starts_the_backoff_afresh(attempt: int, lasted: float, expected: int) -> None:
    assert BACKOFF.after_drop(attempt, lasted) == expected
