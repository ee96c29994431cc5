"""Who may call the facade: API key pairs, Alpaca's per-key rate limit, and injected faults."""

from __future__ import annotations

import hmac
import json
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

RATE_LIMIT_PER_MINUTE = 200
WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class KeyPair:
    key_id: str
    secret_key: str
    account_id: str
    # Alpaca's market-data plans: "basic" streams iex and indicative; "unlimited" also sip and opra.
    data_plan: str = "basic"


class KeyStore:
    def __init__(self, pairs: list[KeyPair]) -> None:
        self._pairs = {pair.key_id: pair for pair in pairs}

    @classmethod
    def from_specs(cls, specs: list[str], *, file: Path | None = None) -> KeyStore:
        """`KEY:SECRET[:ACCOUNT]` strings, and/or a JSON file `{"keys": [{key_id, secret_key, account_id?}]}`."""
        pairs = []
        for spec in specs:
            parts = spec.split(":")
            if len(parts) not in {2, 3} or not all(parts):
                raise ValueError("a key is KEY_ID:SECRET_KEY or KEY_ID:SECRET_KEY:ACCOUNT_ID")
            pairs.append(KeyPair(parts[0], parts[1], parts[2] if len(parts) == 3 else parts[0]))
        if file is not None:
            for entry in json.loads(file.read_text(encoding="utf-8"))["keys"]:
                key_id = entry["key_id"]
                pairs.append(KeyPair(key_id, entry["secret_key"], entry.get("account_id", key_id)))
        return cls(pairs)

    def authenticate(self, key_id: str | None, secret_key: str | None) -> KeyPair | None:
        pair = self._pairs.get(key_id or "")
        if pair is None or not hmac.compare_digest(pair.secret_key.encode(), (secret_key or "").encode()):
            return None
        return pair

    def revoke(self, key_id: str) -> None:
        self._pairs.pop(key_id, None)

    def __iter__(self):
        return iter(self._pairs.values())


class RateLimiter:
    """Alpaca's limit: so many requests per key in any rolling minute."""

    def __init__(self, per_minute: int = RATE_LIMIT_PER_MINUTE) -> None:
        self.per_minute = per_minute
        self._calls: dict[str, deque[float]] = {}

    def allow(self, key_id: str) -> bool:
        now = time.monotonic()
        calls = self._calls.setdefault(key_id, deque())
        while calls and now - calls[0] >= WINDOW_SECONDS:
            calls.popleft()
        if len(calls) >= self.per_minute:
            return False
        calls.append(now)
        return True


MAX_FAULT = 3600  # seconds of latency, or failures queued


@dataclass
class Faults:
    """Failures a test can ask the facade for: slowness, 5xx, 429 bursts, hangs, dropped streams."""

    latency_seconds: float = 0.0
    errors_5xx: int = 0
    errors_429: int = 0
    hangs: int = 0

    def take(self, name: str) -> bool:
        left = getattr(self, name)
        if left > 0:
            setattr(self, name, left - 1)
            return True
        return False

    def update(self, changes: dict[str, object]) -> None:
        """Apply all of `changes`, or none of them (ValueError names the first bad one)."""
        accepted = {}
        for name in ("latency_seconds", "errors_5xx", "errors_429", "hangs"):
            if name in changes:
                value = changes[name]
                if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= MAX_FAULT:
                    raise ValueError(f"{name} must be a number from 0 to {MAX_FAULT}")
                accepted[name] = type(getattr(self, name))(value)
        for name, value in accepted.items():
            setattr(self, name, value)
