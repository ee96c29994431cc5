"""Symbol arguments: normalised, checked for shape, and capped in number."""

from __future__ import annotations

from collections.abc import Sequence

from server.api.errors import bad_user_input
from server.brokers.symbols import MAX_SYMBOL_LENGTH, clean_symbol


def normalize_symbol(raw: str) -> str:
    symbol = clean_symbol(raw)
    if symbol is None:
        shown = raw if len(raw) <= MAX_SYMBOL_LENGTH else raw[:MAX_SYMBOL_LENGTH] + "..."
        raise bad_user_input(f"Malformed symbol {shown!r}", symbols=[shown])
    return symbol


def normalize_symbols(raw: Sequence[str], *, limit: int) -> list[str]:
    if len(raw) > limit:
        raise bad_user_input(f"At most {limit} symbols per request, got {len(raw)}", limit=limit)
    return [normalize_symbol(symbol) for symbol in raw]
