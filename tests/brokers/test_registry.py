"""The broker registry: which broker a stored connection gets."""

from __future__ import annotations

import pytest

from server.brokers.alpaca.broker import AlpacaBroker
from server.brokers.paper.broker import PaperBrokers
from server.brokers.registry import BrokerRegistry, LiveTradingDisabledError, UnsupportedBrokerError
from server.models import BrokerConnection
from tests.utils.alpaca import alpaca_brokers
from tests.utils.facade import KEY_ID, SECRET_KEY, Facade
from tests.utils.paper import paper_world

pytestmark = pytest.mark.anyio


def _registry(*, allow_live: bool) -> BrokerRegistry:
    world = paper_world()
    facade = Facade("127.0.0.1:9", world, None, None)  # type: ignore[arg-type]  # never called here
    return BrokerRegistry(
        PaperBrokers(world.exchange),
        on_trade_update=lambda _ref, _update: None,
        alpaca=alpaca_brokers(facade),
        decrypt=lambda text: text.removeprefix("sealed:"),
        allow_live=allow_live,
    )


def _connection(kind: str) -> BrokerConnection:
    return BrokerConnection(
        id=f"{kind.lower()}-1",
        user_id="user-1",
        kind=kind,
        label=kind.lower(),
        api_key_ciphertext=f"sealed:{KEY_ID}",
        secret_key_ciphertext=f"sealed:{SECRET_KEY}",
    )


async def test_live_connections_get_no_broker_while_live_trading_is_off() -> None:
    registry = _registry(allow_live=False)
    with pytest.raises(LiveTradingDisabledError):
        registry.broker_for(_connection("ALPACA_LIVE"))
    assert isinstance(registry.broker_for(_connection("ALPACA_PAPER")), AlpacaBroker)
    await registry.close()


async def test_live_connections_trade_when_the_operator_allows_it() -> None:
    registry = _registry(allow_live=True)
    assert isinstance(registry.broker_for(_connection("ALPACA_LIVE")), AlpacaBroker)
    await registry.close()


async def test_alpaca_connections_without_keys_are_refused() -> None:
    registry = _registry(allow_live=True)
    keyless = _connection("ALPACA_PAPER")
    keyless.api_key_ciphertext = None
    with pytest.raises(UnsupportedBrokerError):
        registry.broker_for(keyless)
    await registry.close()
