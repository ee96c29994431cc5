"""Broker connections: checking keys with the broker, storing them encrypted, showing a hint.

A connection is PAPER (the embedded exchange, no keys) or Alpaca with the user's own
keys, paper or live; live trading needs the operator's ALLOW_LIVE_TRADING. Keys are
checked against the broker before anything is stored, encrypted with the vault, and only
their hint is ever shown again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.brokers.alpaca.keys import KeyVerdict
from server.models import BrokerConnection
from server.security.vault import Vault, key_hint
from server.users.audit import Actor, record
from server.users.problems import UserProblem

KEY_PATTERN = re.compile(r"^[\x21-\x7e]{8,128}$")  # printable ASCII, no spaces
MAX_LABEL_LENGTH = 64


class BrokerKind(StrEnum):
    PAPER = "PAPER"
    ALPACA_PAPER = "ALPACA_PAPER"
    ALPACA_LIVE = "ALPACA_LIVE"


@dataclass(frozen=True, slots=True)
class BrokerKeys:
    api_key: str = field(repr=False)
    secret_key: str = field(repr=False)


class KeyChecker(Protocol):
    async def check(self, api_key: str, secret_key: str, *, paper: bool) -> KeyVerdict: ...


@dataclass(frozen=True, slots=True)
class PreparedConnection:
    """A connection whose keys the broker accepted, encrypted and ready to store."""

    kind: BrokerKind
    label: str
    api_key_ciphertext: str | None = field(default=None, repr=False)
    secret_key_ciphertext: str | None = field(default=None, repr=False)
    key_hint: str | None = None
    verified_at: datetime | None = None


class BrokerConnections:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        vault: Vault,
        checker: KeyChecker,
        *,
        allow_live: bool,
        now: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._vault = vault
        self._checker = checker
        self._allow_live = allow_live
        self._now = now

    async def prepare(
        self, kind: BrokerKind, keys: BrokerKeys | None, label: str | None
    ) -> PreparedConnection | list[UserProblem]:
        label = (label or kind.value.lower().replace("_", "-")).strip()
        problems = _check_request(kind, keys, label, allow_live=self._allow_live)
        if problems:
            return problems
        if keys is None:
            return PreparedConnection(kind, label)
        verdict = await self._checker.check(keys.api_key, keys.secret_key, paper=kind is not BrokerKind.ALPACA_LIVE)
        if verdict is KeyVerdict.REJECTED:
            return [UserProblem("BROKER_AUTH_FAILED", "The broker refused these keys.", "apiKey")]
        if verdict is KeyVerdict.UNAVAILABLE:
            return [UserProblem("BROKER_UNAVAILABLE", "The broker could not be reached to check the keys; try again.")]
        return PreparedConnection(
            kind,
            label,
            api_key_ciphertext=self._vault.encrypt(keys.api_key),
            secret_key_ciphertext=self._vault.encrypt(keys.secret_key),
            key_hint=key_hint(keys.api_key),
            verified_at=self._now(),
        )

    async def connect(
        self, user_id: str, prepared: PreparedConnection, *, make_default: bool, actor: Actor
    ) -> BrokerConnection | list[UserProblem]:
        async with self._sessions() as session:
            try:
                connection = await add_connection(session, user_id, prepared, make_default=make_default)
            except IntegrityError:
                await session.rollback()
                return [UserProblem("LABEL_TAKEN", "You already have a connection with that label.", "label")]
            record(session, "connect_broker", "success", actor, kind=prepared.kind.value, connection=connection.id)
            await session.commit()
            await session.refresh(connection)
        return connection

    async def of_user(self, user_id: str) -> list[BrokerConnection]:
        async with self._sessions() as session:
            rows = await session.exec(
                select(BrokerConnection)
                .where(BrokerConnection.user_id == user_id)
                .order_by(col(BrokerConnection.created_at), col(BrokerConnection.id))
            )
            return list(rows.all())


async def add_connection(
    session: AsyncSession, user_id: str, prepared: PreparedConnection, *, make_default: bool
) -> BrokerConnection:
    """Add the connection in `session` (raises IntegrityError when the label is taken)."""
    if make_default:
        await session.exec(  # type: ignore[call-overload]
            update(BrokerConnection).where(col(BrokerConnection.user_id) == user_id).values(is_default=False)
        )
    connection = BrokerConnection(
        user_id=user_id,
        kind=prepared.kind.value,
        label=prepared.label,
        is_default=make_default,
        api_key_ciphertext=prepared.api_key_ciphertext,
        secret_key_ciphertext=prepared.secret_key_ciphertext,
        key_hint=prepared.key_hint,
        last_verified_at=prepared.verified_at,
    )
    session.add(connection)
    await session.flush()
    return connection


def _check_request(kind: BrokerKind, keys: BrokerKeys | None, label: str, *, allow_live: bool) -> list[UserProblem]:
    problems = []
    if not 0 < len(label) <= MAX_LABEL_LENGTH:
        problems.append(UserProblem("INVALID_LABEL", f"Labels are 1 to {MAX_LABEL_LENGTH} characters.", "label"))
    if kind is BrokerKind.PAPER:
        if keys is not None:
            problems.append(UserProblem("KEYS_NOT_ALLOWED", "The paper exchange takes no keys.", "apiKey"))
        return problems
    if kind is BrokerKind.ALPACA_LIVE and not allow_live:
        problems.append(UserProblem("LIVE_TRADING_DISABLED", "Live trading is not enabled on this server.", "kind"))
    if keys is None:
        problems.append(UserProblem("KEYS_REQUIRED", "Alpaca connections need an API key and secret.", "apiKey"))
        return problems
    if not KEY_PATTERN.match(keys.api_key):
        problems.append(UserProblem("INVALID_KEY", "That does not look like an Alpaca API key.", "apiKey"))
    if not KEY_PATTERN.match(keys.secret_key):
        problems.append(UserProblem("INVALID_KEY", "That does not look like an Alpaca secret key.", "secretKey"))
    return problems
