"""A restart rebuilds paper accounts from the ledger's fills: the same cash, positions and
realized P&L as before it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.brokers.paper.clock import ManualClock
from tests.utils.accounts import SignedIn, as_user, register
from tests.utils.factories import make_settings
from tests.utils.trading import accepted, in_process, place

pytestmark = pytest.mark.anyio

BOOK = """{
  account { cash realizedPl }
  positions { symbol qty side avgEntryPrice costBasis }
}"""


async def _book(http: httpx.AsyncClient, ada: SignedIn) -> dict[str, Any]:
    result = await as_user(http, ada.access_token, BOOK)
    assert "errors" not in result, result
    return result["data"]


async def test_paper_accounts_come_back_from_the_ledger(tmp_path: Path, clock: ManualClock) -> None:
    settings = make_settings(tmp_path / "data")
    first = create_app(settings, clock=clock)
    async with in_process(first) as http:
        ada = await register(http, "ada")
        accepted(await place(http, ada.access_token, symbol="AAPL", side="BUY", qty="5"), "FILLED")
        clock.advance(30)
        accepted(await place(http, ada.access_token, symbol="AAPL", side="SELL", qty="2"), "FILLED")
        accepted(await place(http, ada.access_token, symbol="SPY", side="BUY", notional="1000"), "FILLED")
        accepted(await place(http, ada.access_token, symbol="F", side="SELL", qty="10"), "FILLED")  # a short
        await first.state.services.trading.flush()
        before = await _book(http, ada)

    second = create_app(settings, clock=clock)
    async with in_process(second) as http:
        after = await _book(http, ada)

    assert after == before
    assert {p["symbol"] for p in after["positions"]} == {"AAPL", "F", "SPY"}
    assert after["account"]["realizedPl"] != "0.00"
