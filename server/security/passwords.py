"""Passwords: argon2id hashes made and checked in worker threads, and the password policy.

Hashing is deliberately slow and memory-hungry, so it never runs on the event loop: at
most `max_concurrent` hashes run at once (each needs `memory_cost` KiB), each bounded
by a timeout. Checking a password for a user that does not exist still does the work of
one check, so response times do not reveal which usernames exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from server.threads import WorkerSlots, WorkerTimeoutError

T = TypeVar("T")
MIN_LENGTH = 10
MAX_LENGTH = 256
COMMON_PASSWORDS = frozenset(
    """
    123456 123456789 12345678 1234567890 12345 1234567 password password1 password123 qwerty
    qwerty123 qwertyuiop 111111 000000 123123 abc123 1q2w3e4r 1q2w3e4r5t 1qaz2wsx iloveyou
    admin admin123 administrator welcome welcome1 letmein monkey dragon sunshine princess
    football baseball superman batman trustno1 master shadow michael jennifer starwars
    passw0rd p@ssw0rd p@ssword changeme secret123 zaq12wsx asdfghjkl asdfasdf zxcvbnm
    qazwsx 654321 987654321 11111111 121212 666666 7777777 88888888 99999999 aaaaaa
    access hello123 login123 whatever freedom ninja mustang summer2024 winter2024
    password2024 password2025 password2026 trading123 stocks123 alpaca123 investor
    """.split()  # noqa: SIM905 - a word list reads better as words
)


class PasswordHashTimeoutError(Exception):
    """Hashing took too long (the machine is overloaded); the caller answers 'try again'."""


@dataclass(frozen=True, slots=True)
class PolicyViolation:
    code: str
    message: str


def check_password_policy(password: str, *, username: str, email: str) -> list[PolicyViolation]:
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(PolicyViolation("PASSWORD_TOO_SHORT", f"Use at least {MIN_LENGTH} characters."))
    if len(password) > MAX_LENGTH:
        problems.append(PolicyViolation("PASSWORD_TOO_LONG", f"Use at most {MAX_LENGTH} characters."))
    lowered = password.casefold()
    local_part = email.split("@", 1)[0].casefold()
    if username and (lowered == username.casefold() or (len(username) >= 4 and username.casefold() in lowered)):
        problems.append(PolicyViolation("PASSWORD_CONTAINS_USERNAME", "The password must not contain the username."))
    elif local_part and len(local_part) >= 4 and local_part in lowered:
        problems.append(PolicyViolation("PASSWORD_CONTAINS_EMAIL", "The password must not contain the email address."))
    if lowered in COMMON_PASSWORDS or len(set(password)) <= 2:
        problems.append(PolicyViolation("PASSWORD_TOO_COMMON", "This password is too easy to guess."))
    return problems


@dataclass(frozen=True, slots=True)
class HashingParameters:
    # OWASP's argon2id recommendation (19 MiB, 2 passes): ~40 ms a hash here, so ten
    # sign-ins a second cost under half a core.
    time_cost: int = 2
    memory_cost: int = 19 * 1024  # KiB
    parallelism: int = 1


class PasswordService:
    def __init__(
        self,
        parameters: HashingParameters = HashingParameters(),
        *,
        max_concurrent: int = 2,
        timeout_seconds: float = 10.0,
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=parameters.time_cost,
            memory_cost=parameters.memory_cost,
            parallelism=parameters.parallelism,
            type=Type.ID,
        )
        self._workers = WorkerSlots(max_concurrent, timeout_seconds=timeout_seconds)
        self._dummy_hash = self._hasher.hash("not a real password: evens out unknown-user timing")

    async def _offload(self, function: Callable[..., T], *args: object) -> T:
        try:
            return await self._workers.run(function, *args)
        except WorkerTimeoutError:
            raise PasswordHashTimeoutError from None

    async def hash(self, password: str) -> str:
        return await self._offload(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; a missing hash (unknown user) costs the same and is False."""
        return await self._offload(self._verify, password_hash, password)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        try:
            self._hasher.verify(password_hash or self._dummy_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other parameters (rehash it after a good login)."""
        return self._hasher.check_needs_rehash(password_hash)
