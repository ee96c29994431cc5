"""Reconnect delays: exponential with full jitter, capped, so many clients never retry in step."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    first_seconds: float = 0.2
    max_seconds: float = 10.0
    factor: float = 2.0
    # A session must last this long before a drop counts as a first failure again.
    stable_seconds: float = 30.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The wait before reconnect number `attempt` (1 for the first)."""
        ceiling = min(self.max_seconds, self.first_seconds * self.factor ** max(0, attempt - 1))
        return (rng or random).uniform(ceiling / 2, ceiling)

    def after_drop(self, attempt: int, session_seconds: float) -> int:
        """The attempt number after a session that lasted `session_seconds` dropped: only a
        session that lasted starts afresh, so a stream that connects and drops at once
        cannot reconnect in a tight loop."""
        return 1 if session_seconds >= self.stable_seconds else attempt + 1
