"""Sign-up, sign-in, token refresh, sign-out, password change and broker connection."""

from __future__ import annotations

import strawberry

from server.api.auth import signed_in_user
from server.api.context import Info
from server.api.users.inputs import ChangePasswordInput, ConnectBrokerInput, LoginInput, RegisterInput
from server.api.users.types import (
    AuthPayload,
    BrokerConnection,
    ChangePasswordPayload,
    ConnectBrokerPayload,
    LogoutPayload,
    UserError,
)
from server.users.brokers import BrokerKeys, BrokerKind, PreparedConnection
from server.users.problems import UserProblem
from server.users.service import registration_problems


def _keys(api_key: str | None, secret_key: str | None) -> BrokerKeys | None:
    if api_key is None and secret_key is None:
        return None
    return BrokerKeys(api_key or "", secret_key or "")


@strawberry.type
class AccountMutation:
    @strawberry.mutation(description="Create an account and sign in. Alpaca keys, if given, are checked first.")
    async def register(self, info: Info, input: RegisterInput) -> AuthPayload:
        services = info.context.services
        broker: PreparedConnection | None = None
        keys = _keys(input.alpaca_api_key, input.alpaca_secret_key)
        problems = registration_problems(input.username, input.email, input.password)
        if problems:  # before asking the broker anything
            return AuthPayload(user_errors=UserError.of(problems))
        if keys is not None:
            kind = BrokerKind.ALPACA_PAPER if input.alpaca_paper else BrokerKind.ALPACA_LIVE
            prepared = await services.connections.prepare(kind, keys, None)
            if isinstance(prepared, list):
                return AuthPayload(user_errors=UserError.of([_as_register_field(p) for p in prepared]))
            broker = prepared
        result = await services.users.register(
            input.username, input.email, input.password, info.context.actor, broker=broker
        )
        return AuthPayload.of(result)

    @strawberry.mutation(description="Sign in with a username (or email) and password.")
    async def login(self, info: Info, input: LoginInput) -> AuthPayload:
        services = info.context.services
        # every attempt from an address
        await services.limits.login_ip.hit(services.limits.address_key(info.context.client_ip))
        return AuthPayload.of(await services.users.login(input.username, input.password, info.context.actor))

    @strawberry.mutation(description="Trade a refresh token for a new session; the old token is spent.")
    async def refresh_token(self, info: Info, refresh_token: str) -> AuthPayload:
        result = await info.context.services.users.refresh(refresh_token, info.context.actor)
        return AuthPayload.of(result, prefix=())

    @strawberry.mutation(description="End the session the refresh token belongs to.")
    async def logout(self, info: Info, refresh_token: str) -> LogoutPayload:
        if await info.context.services.users.logout(refresh_token, info.context.actor):
            return LogoutPayload(ok=True)
        problem = UserProblem("INVALID_REFRESH_TOKEN", "This refresh token is not valid.", "refreshToken")
        return LogoutPayload(ok=False, user_errors=UserError.of([problem], prefix=()))

    @strawberry.mutation(description="Change the password; every other session ends.")
    async def change_password(self, info: Info, input: ChangePasswordInput) -> ChangePasswordPayload:
        user = await signed_in_user(info)
        problems = await info.context.services.users.change_password(
            user.id, input.current_password, input.new_password, info.context.actor
        )
        return ChangePasswordPayload(ok=not problems, user_errors=UserError.of(problems))

    @strawberry.mutation(description="Connect a broker: the paper exchange, or Alpaca with your keys (checked first).")
    async def connect_broker(self, info: Info, input: ConnectBrokerInput) -> ConnectBrokerPayload:
        user = await signed_in_user(info)
        connections = info.context.services.connections
        prepared = await connections.prepare(
            BrokerKind(input.kind), _keys(input.api_key, input.secret_key), input.label
        )
        if isinstance(prepared, list):
            return ConnectBrokerPayload(user_errors=UserError.of(prepared))
        stored = await connections.connect(user.id, prepared, make_default=input.make_default, actor=info.context.actor)
        if isinstance(stored, list):
            return ConnectBrokerPayload(user_errors=UserError.of(stored))
        return ConnectBrokerPayload(connection=BrokerConnection.from_row(stored))


_REGISTER_FIELDS = {"apiKey": "alpacaApiKey", "secretKey": "alpacaSecretKey", "kind": "alpacaPaper"}


def _as_register_field(problem: UserProblem) -> UserProblem:
    field = _REGISTER_FIELDS.get(problem.field or "", problem.field)
    return UserProblem(problem.code, problem.message, field)
