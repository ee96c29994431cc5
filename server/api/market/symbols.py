"""Symbol arguments: normalised, checked for shape, and capped in number."""

from __future__ import annotations

import re
from collections.abc import Sequence

from server.api.errors import bad_user_input

MAX_SYMBOL_LENGTH = 32
# Stock tickers such as AAPL or BRK.B; option contracts are OCC symbols (AAPL261218C00200000).
_STOCK = re.compile(r"^[A-Z]{1,6}([./][A-Z]{1,2})?$")
_OPTION = re.compile(r"^[A-Z]{1,6}\d{6}[CP]\d{8}$")


def normalize_symbol(raw: str) -> str:
    # ASCII first: upper-casing a dotless i or a sharp s would invent a symbol nobody sent.
    symbol = raw.strip().upper() if raw.isascii() else ""
    if len(symbol) > MAX_SYMBOL_LENGTH or not (_STOCK.match(symbol) or _OPTION.match(symbol)):
        shown = raw if len(raw) <= MAX_SYMBOL_LENGTH else raw[:MAX_SYMBOL_LENGTH] + "..."
        raise bad_user_input(f"Malformed symbol {shown!r}", symbols=[shown])
    return symbol


def normalize_symbols(raw: Sequence[str], *, limit: int) -> list[str]:
    if len(raw) > limit:
        raise bad_user_input(f"At most {limit} symbols per request, got {len(raw)}", limit=limit)
    return [normalize_symbol(symbol) for symbol in raw]
