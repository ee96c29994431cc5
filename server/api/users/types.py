"""GraphQL types of users, sessions and broker connections (keys never appear: only a hint)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from enum import Enum

import strawberry

from server.api.context import Info
from server.models import BrokerConnection as BrokerConnectionRow
from server.models import User as UserRow
from server.users.brokers import BrokerKind as BrokerKindModel
from server.users.problems import UserProblem
from server.users.service import Session

BrokerKind = strawberry.enum(BrokerKindModel, name="BrokerKind", description="Which broker a connection trades with.")


@strawberry.enum(description="What a user may do: admins also manage users and their risk limits.")
class Role(Enum):
    USER = "user"
    ADMIN = "admin"


@strawberry.type(description="An expected refusal: which input field, why, and a stable code.")
class UserError:
    field: list[str] | None = strawberry.field(description="Path to the input field at fault, if one is.")
    message: str
    code: str

    @classmethod
    def of(cls, problems: Sequence[UserProblem], *, prefix: Sequence[str] = ("input",)) -> list[UserError]:
        return [
            cls(
                field=[*prefix, *problem.field.split(".")] if problem.field else None,
                message=problem.message,
                code=problem.code,
            )
            for problem in problems
        ]


@strawberry.type(description="A broker account the user trades through. Keys are never shown, only a hint.")
class BrokerConnection:
    id: strawberry.ID
    kind: BrokerKind  # type: ignore[valid-type]
    label: str
    is_default: bool
    key_hint: str | None = strawberry.field(description="The last characters of the API key, to recognise it.")
    created_at: datetime
    last_verified_at: datetime | None

    @classmethod
    def from_row(cls, row: BrokerConnectionRow) -> BrokerConnection:
        return cls(
            id=strawberry.ID(row.id),
            kind=BrokerKindModel(row.kind),
            label=row.label,
            is_default=row.is_default,
            key_hint=row.key_hint,
            created_at=row.created_at,
            last_verified_at=row.last_verified_at,
        )


@strawberry.type(description="Per-user risk settings; null limits use the server's defaults.")
class RiskLimits:
    kill_switch: bool = strawberry.field(description="When on, no new order is accepted.")
    max_order_notional: Decimal | None
    max_position_notional: Decimal | None
    price_band_percent: Decimal | None


@strawberry.type
class User:
    id: strawberry.ID
    username: str
    email: str
    role: Role
    is_active: bool
    created_at: datetime
    risk_limits: RiskLimits

    @strawberry.field(description="The user's broker connections, oldest first.")
    async def broker_connections(self, info: Info) -> list[BrokerConnection]:
        rows = await info.context.services.connections.of_user(str(self.id))
        return [BrokerConnection.from_row(row) for row in rows]

    @classmethod
    def from_row(cls, row: UserRow) -> User:
        return cls(
            id=strawberry.ID(row.id),
            username=row.username,
            email=row.email,
            role=Role(row.role),
            is_active=row.is_active,
            created_at=row.created_at,
            risk_limits=RiskLimits(
                kill_switch=row.kill_switch,
                max_order_notional=row.max_order_notional,
                max_position_notional=row.max_position_notional,
                price_band_percent=row.price_band_percent,
            ),
        )


@strawberry.type(description="A signed-in session, or the reasons there is none.")
class AuthPayload:
    access_token: str | None = None
    refresh_token: str | None = strawberry.field(
        default=None, description="Single use: each refresh returns a new one. Reusing an old one ends the session."
    )
    expires_in: int | None = strawberry.field(default=None, description="Seconds until the access token expires.")
    user: User | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: Session | list[UserProblem], *, prefix: Sequence[str] = ("input",)) -> AuthPayload:
        if isinstance(result, list):
            return cls(user_errors=UserError.of(result, prefix=prefix))
        return cls(
            access_token=result.access.token,
            refresh_token=result.refresh_token,
            expires_in=result.access.expires_in,
            user=User.from_row(result.user),
        )


@strawberry.type
class LogoutPayload:
    ok: bool
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ChangePasswordPayload:
    ok: bool
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ConnectBrokerPayload:
    connection: BrokerConnection | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="The user an admin acted on.")
class AdminUserPayload:
    user: User | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)
