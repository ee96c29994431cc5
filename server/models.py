"""SQLModel tables. Every change here is an alembic migration too (tests compare them)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.db_types import Money, UTCDateTime

# Named constraints, so later migrations can alter them the same way on every dialect.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID_LENGTH = 36
AutoIncrementId = BigInteger().with_variant(Integer(), "sqlite")


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


def _id() -> Any:
    return Field(default_factory=new_id, primary_key=True, max_length=ID_LENGTH)


def _timestamp() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def _optional_timestamp() -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=True)


def _money(*, nullable: bool = True, default: Decimal | None = None) -> Any:
    return Field(default=default, sa_type=Money, nullable=nullable)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: str = _id()
    username: str = Field(max_length=32, unique=True)
    email: str = Field(max_length=254, unique=True)
    password_hash: str = Field(max_length=255)
    role: str = Field(default="user", max_length=16)
    is_active: bool = Field(default=True)
    kill_switch: bool = Field(default=False)
    max_order_notional: Decimal | None = _money()
    max_position_notional: Decimal | None = _money()
    price_band_percent: Decimal | None = _money()
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class BrokerConnection(SQLModel, table=True):
    __tablename__ = "broker_connections"
    __table_args__ = (UniqueConstraint("user_id", "label"),)

    id: str = _id()
    user_id: str = Field(foreign_key="users.id", ondelete="CASCADE", index=True, max_length=ID_LENGTH)
    kind: str = Field(max_length=16)
    label: str = Field(max_length=64)
    is_default: bool = Field(default=False)
    api_key_ciphertext: str | None = Field(default=None, sa_type=Text)
    secret_key_ciphertext: str | None = Field(default=None, sa_type=Text)
    key_hint: str | None = Field(default=None, max_length=8)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()
    last_verified_at: datetime | None = _optional_timestamp()


class RefreshToken(SQLModel, table=True):
    __tablename__ = "refresh_tokens"

    id: str = _id()
    user_id: str = Field(foreign_key="users.id", ondelete="CASCADE", index=True, max_length=ID_LENGTH)
    family_id: str = Field(index=True, max_length=ID_LENGTH)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = _timestamp()
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    used_at: datetime | None = _optional_timestamp()
    revoked_at: datetime | None = _optional_timestamp()
    replaced_by_id: str | None = Field(default=None, max_length=ID_LENGTH)
    created_ip: str | None = Field(default=None, max_length=45)
    user_agent: str | None = Field(default=None, max_length=255)


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("user_id", "client_order_id"),
        Index("ix_orders_user_created", "user_id", "created_at", "id"),
        Index("ix_orders_user_status", "user_id", "status"),
    )

    id: str = _id()
    user_id: str = Field(foreign_key="users.id", ondelete="CASCADE", max_length=ID_LENGTH)
    connection_id: str = Field(
        foreign_key="broker_connections.id", ondelete="CASCADE", index=True, max_length=ID_LENGTH
    )
    parent_order_id: str | None = Field(
        default=None, foreign_key="orders.id", ondelete="CASCADE", index=True, max_length=ID_LENGTH
    )
    client_order_id: str = Field(max_length=128)
    broker_order_id: str | None = Field(default=None, index=True, max_length=64)
    symbol: str = Field(max_length=32)
    asset_class: str = Field(max_length=16)
    side: str = Field(max_length=8)
    order_type: str = Field(max_length=16)
    time_in_force: str = Field(max_length=8)
    order_class: str = Field(default="simple", max_length=8)
    qty: Decimal | None = _money()
    notional: Decimal | None = _money()
    limit_price: Decimal | None = _money()
    stop_price: Decimal | None = _money()
    trail_price: Decimal | None = _money()
    trail_percent: Decimal | None = _money()
    extended_hours: bool = Field(default=False)
    status: str = Field(max_length=24)
    filled_qty: Decimal = _money(nullable=False, default=Decimal(0))
    filled_avg_price: Decimal | None = _money()
    reject_reason: str | None = Field(default=None, sa_type=Text)
    reject_code: str | None = Field(default=None, max_length=32)
    # The order this one replaced (replaceOrder): ids of this ledger, not the broker's.
    replaces_order_id: str | None = Field(default=None, max_length=ID_LENGTH)
    submitted_at: datetime | None = _optional_timestamp()
    filled_at: datetime | None = _optional_timestamp()
    canceled_at: datetime | None = _optional_timestamp()
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()


class OrderEvent(SQLModel, table=True):
    __tablename__ = "order_events"
    __table_args__ = (
        UniqueConstraint("order_id", "execution_id"),
        Index("ix_order_events_order", "order_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=AutoIncrementId)
    order_id: str = Field(foreign_key="orders.id", ondelete="CASCADE", max_length=ID_LENGTH)
    event: str = Field(max_length=32)
    status: str = Field(max_length=24)
    execution_id: str | None = Field(default=None, max_length=64)
    qty: Decimal | None = _money()
    price: Decimal | None = _money()
    filled_qty: Decimal | None = _money()
    detail: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    occurred_at: datetime = _timestamp()
    recorded_at: datetime = _timestamp()


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_user_created", "user_id", "created_at"),
        Index("ix_audit_events_action_created", "action", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=AutoIncrementId)
    user_id: str | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL", max_length=ID_LENGTH)
    action: str = Field(max_length=64)
    outcome: str = Field(max_length=16)
    ip: str | None = Field(default=None, max_length=45)
    request_id: str | None = Field(default=None, max_length=64)
    detail: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    created_at: datetime = _timestamp()
