"""The security audit log: a JSON line in the `security` category and a row in audit_events.

Details never carry a password, token or key: callers pass only identifiers and outcomes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from server.log import request_id_var
from server.models import AuditEvent

logger = logging.getLogger("server.audit")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting, as far as the request tells: the client address and the signed-in user."""

    ip: str | None = None
    user_id: str | None = None


def record(session: AsyncSession, action: str, outcome: str, actor: Actor, **detail: Any) -> None:
    """Add the audit row to `session` (committed with the change it describes) and log it."""
    request_id = request_id_var.get()
    session.add(
        AuditEvent(
            user_id=actor.user_id,
            action=action,
            outcome=outcome,
            ip=actor.ip,
            request_id=request_id,
            detail=detail or None,
        )
    )
    logger.info(
        "%s %s",
        action,
        outcome,
        extra={
            "category": "security",
            "action": action,
            "outcome": outcome,
            "user_id": actor.user_id,
            "ip": actor.ip,
            **detail,
        },
    )
