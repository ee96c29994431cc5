"""Typed settings: one class, read from the environment (and a `.env` file if present)."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from ipaddress import ip_network
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from server.brokers.paper.calendar import MarketHoursMode

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "mysql": "mysql+aiomysql",
    "mariadb": "mysql+aiomysql",
}


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


def to_async_url(url: str) -> str:
    """Give a plain database URL its async driver: `postgresql://` -> `postgresql+asyncpg://`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("DATABASE_URL must look like scheme://...")
    if "+" in scheme:
        return url
    driver = _ASYNC_DRIVERS.get(scheme)
    if driver is None:
        raise ValueError(f"unsupported database scheme {scheme!r}: use sqlite, postgresql or mysql")
    return f"{driver}://{rest}"


class Settings(BaseSettings):
    # hide_input_in_errors: a refused value may be a secret, and pydantic would echo it.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", hide_input_in_errors=True
    )

    environment: Environment = Environment.DEVELOPMENT
    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=0, le=65535)
    data_dir: Path = Path("data")
    database_url: str = ""
    auto_migrate: bool = True
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    jwt_secret: SecretStr | None = None
    fernet_keys: SecretStr | None = None
    access_token_minutes: int = Field(default=15, ge=1, le=24 * 60)
    refresh_token_days: int = Field(default=30, ge=1, le=365)
    password_hash_time_cost: int = Field(default=2, ge=1, le=20)
    password_hash_memory_kib: int = Field(default=19 * 1024, ge=8 * 1024, le=1024 * 1024)
    # Threads hashing at once; default: one fewer than the cores, so sign-ins never take them all.
    password_hash_threads: int | None = Field(default=None, ge=1, le=64)
    jwt_issuer: str = "alpaca-graphql"
    jwt_audience: str = "alpaca-graphql-api"

    market_hours: MarketHoursMode = MarketHoursMode.ALWAYS
    paper_starting_cash: Decimal = Field(default=Decimal(100000), gt=0, le=Decimal(10) ** 12)
    market_seed: int = 20261123
    market_tick_seconds: float = Field(default=1.0, gt=0, le=60)
    max_symbols_per_request: int = Field(default=100, ge=1, le=1000)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    max_query_depth: int = Field(default=10, ge=2)
    max_aliases: int = Field(default=30, ge=1)
    max_tokens: int = Field(default=2000, ge=50)

    # Browser origins allowed to call the API (CORS) and open WebSockets; empty means same-origin only.
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Reverse proxies whose X-Forwarded-For is believed (their own address is not the client's).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    rate_limit_user_per_minute: int = Field(default=600, ge=1)
    rate_limit_anonymous_per_minute: int = Field(default=120, ge=1)
    login_attempts_per_username: int = Field(default=5, ge=1)
    login_attempts_per_ip: int = Field(default=30, ge=1)
    login_attempt_window_minutes: int = Field(default=15, ge=1)
    rate_limit_orders_per_minute: int = Field(default=300, ge=1)
    rate_limit_max_keys: int = Field(default=10000, ge=100)

    # Pre-trade risk defaults; an admin can set a user's own (setRiskLimits).
    risk_max_order_notional: Decimal = Field(default=Decimal(1_000_000), gt=0, le=Decimal(10) ** 12)
    risk_max_position_notional: Decimal = Field(default=Decimal(5_000_000), gt=0, le=Decimal(10) ** 12)
    risk_price_band_percent: Decimal = Field(default=Decimal(10), gt=0, le=100)

    # Subscriptions: each user's upstream feeds, and what one WebSocket may hold.
    stream_grace_seconds: float = Field(default=5.0, ge=0, le=600)
    paper_stream_stock_symbols: int = Field(default=100, ge=1, le=10_000)
    paper_stream_option_symbols: int = Field(default=200, ge=1, le=10_000)
    max_subscriptions_per_connection: int = Field(default=50, ge=1, le=1000)
    portfolio_updates_per_second: float = Field(default=4.0, gt=0, le=50)
    websocket_keepalive_seconds: float = Field(default=15.0, gt=0, le=300)

    # Alpaca: where it is (default: Alpaca itself; point them at `python -m server paper-exchange`
    # to test), which feeds users' connections read, and how hard the server may call it.
    allow_live_trading: bool = False
    alpaca_trading_url: str | None = None
    alpaca_data_url: str | None = None
    alpaca_trading_stream_url: str | None = None
    alpaca_data_stream_url: str = "wss://stream.data.alpaca.markets"
    alpaca_stock_feed: Literal["iex", "sip"] = "iex"
    alpaca_option_feed: Literal["indicative", "opra"] = "indicative"
    alpaca_requests_per_minute: int = Field(default=200, ge=11, le=10_000)
    alpaca_max_threads: int = Field(default=8, ge=1, le=64)
    # Server-level keys (as in the seed): when set, public market data comes from Alpaca.
    alpaca_api_key: SecretStr | None = None
    alpaca_secret_key: SecretStr | None = None
    broker_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    # /metrics (Prometheus). With a token it needs `Authorization: Bearer <token>`; the clients
    # allowed are these addresses or networks (default: loopback only, or anyone with the token).
    metrics_enabled: bool = True
    metrics_token: SecretStr | None = None
    metrics_allowed_clients: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("allowed_origins", "trusted_proxies", "metrics_allowed_clients", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip().rstrip("/") for item in value.split(",") if item.strip()]
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _no_wildcard(cls, value: list[str]) -> list[str]:
        if "*" in value:
            raise ValueError("list the allowed origins; '*' is not accepted")
        return value

    @field_validator("alpaca_trading_url", "alpaca_data_url", "alpaca_trading_stream_url", "alpaca_data_stream_url")
    @classmethod
    def _encrypted_unless_loopback(cls, value: str | None) -> str | None:
        """Keys travel in every request's headers and the streams' sign-in: never in clear text,
        except to this machine (the paper exchange's facade in tests and demos)."""
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https", "ws", "wss"} or not parts.hostname:
            raise ValueError("must be an http(s):// or ws(s):// URL")
        if parts.scheme in {"http", "ws"} and parts.hostname not in LOOPBACK_HOSTS:
            raise ValueError("must use https:// or wss:// unless the host is this machine")
        return value.rstrip("/")

    @field_validator("metrics_allowed_clients")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        try:
            return [str(ip_network(item, strict=False)) for item in value]
        except ValueError:
            raise ValueError("list IP addresses or networks (127.0.0.1, 10.0.0.0/8, ::1)") from None

    @model_validator(mode="after")
    def _metrics_private_in_production(self) -> Settings:
        remote = [n for n in self.metrics_allowed_clients if not ip_network(n).is_loopback]
        if self.environment is Environment.PRODUCTION and self.metrics_token is None and remote:
            raise ValueError("in production, METRICS_ALLOWED_CLIENTS beyond loopback needs a METRICS_TOKEN")
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _both_alpaca_keys(self) -> Settings:
        if (self.alpaca_api_key is None) != (self.alpaca_secret_key is None):
            raise ValueError("set both ALPACA_API_KEY and ALPACA_SECRET_KEY, or neither")
        return self

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'trading.db'}"
        self.database_url = to_async_url(self.database_url)
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
