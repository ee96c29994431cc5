"""Label values a client cannot multiply: every series is one the server knows of.

A label value from the outside (an operation's name) is kept only when it looks like a
plain name and while fewer than `limit` distinct ones have been seen; anything else is
counted under "other". Values the code itself produces (error codes, statuses, method
names) go through the same check, so a bug cannot flood the registry either.
"""

from __future__ import annotations

import re

OTHER = "other"
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
CODE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")

# Whose object a broker call or a feed is, by its class: the adapters' class names are
# named here rather than imported, so the metrics import nothing of the brokers.
PROVIDERS = {
    "PaperBroker": "paper",
    "PaperMarket": "paper",
    "PaperFeed": "paper",
    "AlpacaBroker": "alpaca",
    "AlpacaMarketData": "alpaca",
    "AlpacaFeed": "alpaca",
}


class BoundedLabel:
    def __init__(self, pattern: re.Pattern[str], limit: int) -> None:
        self._pattern = pattern
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: object, *, admit: bool = True) -> str:
        """The value as a label; `admit=False` keeps values not seen yet out of the set."""
        if not isinstance(value, str):
            return OTHER
        if value in self._seen:
            return value
        if not admit or len(self._seen) >= self._limit or not self._pattern.fullmatch(value):
            return OTHER
        self._seen.add(value)
        return value


def provider_of(class_name: str) -> str:
    return PROVIDERS.get(class_name, OTHER)


def connection_kind(kind: str) -> str:
    """A broker connection's kind as a label: PAPER -> paper, ALPACA_LIVE -> alpaca_live."""
    label = kind.lower()
    return label if label in {"paper", "alpaca_paper", "alpaca_live"} else OTHER
