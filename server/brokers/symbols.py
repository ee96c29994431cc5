"""What a symbol looks like: a stock ticker (AAPL, BRK.B) or an OCC option symbol."""

from __future__ import annotations

import re

MAX_SYMBOL_LENGTH = 32
_STOCK = re.compile(r"^[A-Z]{1,6}([./][A-Z]{1,2})?$")
_OPTION = re.compile(r"^[A-Z]{1,6}\d{6}[CP]\d{8}$")


def clean_symbol(raw: str) -> str | None:
    """The symbol upper-cased and trimmed, or None when it is not a symbol's shape."""
    # ASCII first: upper-casing a dotless i or a sharp s would invent a symbol nobody sent.
    symbol = raw.strip().upper() if raw.isascii() else ""
    if len(symbol) > MAX_SYMBOL_LENGTH or not (_STOCK.match(symbol) or is_option_symbol(symbol)):
        return None
    return symbol


def is_option_symbol(symbol: str) -> bool:
    return _OPTION.match(symbol) is not None
