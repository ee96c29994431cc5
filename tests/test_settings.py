from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from server.settings import Environment, Settings, to_async_url
from tests.utils.factories import make_settings


def test_defaults_need_no_configuration(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert settings.environment is Environment.DEVELOPMENT
    assert (settings.host, settings.port) == ("127.0.0.1", 8081)
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'trading.db'}"
    assert settings.is_sqlite


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@db/x", "postgresql+asyncpg://u@db/x"),
        ("postgres://u@db/x", "postgresql+asyncpg://u@db/x"),
        ("mysql://root@127.0.0.1:3306/test", "mysql+aiomysql://root@127.0.0.1:3306/test"),
        ("mariadb://root@127.0.0.1/test", "mysql+aiomysql://root@127.0.0.1/test"),
        ("sqlite:///data/x.db", "sqlite+aiosqlite:///data/x.db"),
        ("postgresql+asyncpg://u@db/x", "postgresql+asyncpg://u@db/x"),
    ],
)
def test_database_urls_get_async_drivers(given: str, expected: str) -> None:
    assert to_async_url(given) == expected


@pytest.mark.parametrize("url", ["oracle://db/x", "not a url"])
def test_unsupported_database_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="scheme"):
        to_async_url(url)


def test_seed_variable_names_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@127.0.0.1:5432/trading")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("MARKET_SEED", "42")

    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]

    assert settings.database_url == "postgresql+asyncpg://app@127.0.0.1:5432/trading"
    assert settings.log_level == "DEBUG"
    assert settings.port == 9000
    assert settings.market_seed == 42
    assert not settings.is_sqlite


@pytest.mark.parametrize(
    ("name", "value"), [("PORT", "70000"), ("LOG_LEVEL", "LOUD"), ("MAX_SYMBOLS_PER_REQUEST", "0")]
)
def test_invalid_values_are_refused_at_start(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "url",
    ["http://paper-api.alpaca.markets", "ws://stream.data.alpaca.markets", "ftp://127.0.0.1", "not a url"],
)
def test_alpaca_urls_must_be_encrypted_unless_local(url: str) -> None:
    with pytest.raises(ValidationError):
        Settings(alpaca_trading_url=url)


def test_local_alpaca_urls_may_be_plain() -> None:
    settings = Settings(alpaca_trading_url="http://127.0.0.1:8090/", alpaca_data_stream_url="ws://localhost:8090")
    assert settings.alpaca_trading_url == "http://127.0.0.1:8090"
    assert settings.alpaca_data_stream_url == "ws://localhost:8090"


def test_a_refused_setting_never_echoes_its_value() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(alpaca_api_key="PKSECRETVALUE123", metrics_allowed_clients=["not-a-network"])
    assert "PKSECRETVALUE123" not in str(refused.value)
    assert "not-a-network" not in str(refused.value)
