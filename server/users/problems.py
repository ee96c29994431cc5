"""An expected refusal (a taken username, a wrong password), for the API to show as a userError."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UserProblem:
    code: str
    message: str
    field: str | None = None
