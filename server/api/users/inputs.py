"""Inputs of the account mutations. Secrets are plain strings here and go nowhere but the services."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from server.api.users.types import BrokerKind


@strawberry.input
class RegisterInput:
    username: str
    email: str
    password: str
    alpaca_api_key: str | None = strawberry.field(default=None, description="Optional: trade through Alpaca.")
    alpaca_secret_key: str | None = None
    alpaca_paper: bool = strawberry.field(default=True, description="Alpaca paper (true) or live (false) keys.")


@strawberry.input
class LoginInput:
    username: str = strawberry.field(description="Username or email address.")
    password: str


@strawberry.input
class ChangePasswordInput:
    current_password: str
    new_password: str


@strawberry.input
class ConnectBrokerInput:
    kind: BrokerKind  # type: ignore[valid-type]
    api_key: str | None = None
    secret_key: str | None = None
    label: str | None = strawberry.field(default=None, description="Defaults to the kind, e.g. alpaca-paper.")
    make_default: bool = strawberry.field(default=True, description="Trade through this connection by default.")


@strawberry.input(description="Per-user overrides of the risk defaults; null keeps the server's default.")
class RiskLimitsInput:
    max_order_notional: Decimal | None = None
    max_position_notional: Decimal | None = None
    price_band_percent: Decimal | None = None
