"""`python -m server rotate-keys`: re-encrypt every stored broker credential with the primary key.

Put a new key first in FERNET_KEYS (keeping the old ones after it), run this, then drop
the old keys. A credential no configured key opens is reported by connection id and left
as it is; nothing secret is logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.models import BrokerConnection
from server.security.vault import Vault, VaultError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RotationReport:
    rotated: int
    unreadable: list[str]  # connection ids whose credentials no configured key opens


async def rotate_credentials(sessions: async_sessionmaker[AsyncSession], vault: Vault) -> RotationReport:
    rotated, unreadable = 0, []
    async with sessions() as session:
        rows = await session.exec(select(BrokerConnection).where(col(BrokerConnection.api_key_ciphertext).is_not(None)))
        for connection in rows.all():
            try:
                api_key = vault.rotate(connection.api_key_ciphertext or "")
                secret_key = vault.rotate(connection.secret_key_ciphertext or "")
            except VaultError:
                unreadable.append(connection.id)
                logger.error("credential cannot be decrypted", extra={"connection_id": connection.id})
                continue
            connection.api_key_ciphertext, connection.secret_key_ciphertext = api_key, secret_key
            rotated += 1
        await session.commit()
    logger.info("credentials re-encrypted", extra={"rotated": rotated, "unreadable": len(unreadable)})
    return RotationReport(rotated, unreadable)
