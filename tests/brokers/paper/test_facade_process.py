"""`python -m server paper-exchange` as its own process, driven by alpaca-py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockLatestQuoteRequest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from tests.utils.processes import run_server


def test_paper_exchange_process_serves_alpaca_py(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"keys": [{"key_id": "PKFILE", "secret_key": "file-secret"}]}), encoding="utf-8")
    args = ("paper-exchange", "--port", "0", "--key", "PKCLI:cli-secret", "--keys-file", str(keys))
    with run_server(tmp_path, args) as server:
        trading = TradingClient("PKCLI", "cli-secret", paper=True, url_override=server.base_url)
        order = trading.submit_order(
            MarketOrderRequest(symbol="AAPL", qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
        )
        positions = trading.get_all_positions()
        account = trading.get_account()  # a key without an account id still gets a UUID id
        other = TradingClient("PKFILE", "file-secret", paper=True, url_override=server.base_url).get_all_positions()
        data = StockHistoricalDataClient("PKFILE", "file-secret", url_override=server.base_url)
        quotes = data.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols=["AAPL", "SPY"]))
        with pytest.raises(APIError) as refused:
            TradingClient("PKCLI", "wrong", paper=True, url_override=server.base_url).get_account()
    assert order.status is OrderStatus.FILLED
    assert [p.symbol for p in positions] == ["AAPL"]
    assert account.status.value == "ACTIVE"
    assert other == []  # each key has its own account
    assert set(quotes) == {"AAPL", "SPY"}
    assert refused.value.status_code == 401
    assert "cli-secret" not in "\n".join(server.log_lines)
