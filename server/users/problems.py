"""An expected refusal (a taken username, a wrong password), for the API to show as a userError;
and the refusal of a user who may no longer act at all."""

from __future__ import annotations

from dataclasses import dataclass

from server.models import User


@dataclass(frozen=True, slots=True)
class UserProblem:
    code: str
    message: str
    field: str | None = None


class InactiveUserError(Exception):
    """The signed-in user no longer exists or has been disabled: their unexpired tokens stop working at once."""


def require_active(user: User | None) -> User:
    if user is None or not user.is_active:
        raise InactiveUserError
    return user
