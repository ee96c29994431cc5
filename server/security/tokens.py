"""Access tokens (JWT) and refresh tokens (opaque, stored only as a hash).

Access tokens are HS256 JWTs carrying exp, iat, nbf, iss, aud, sub, jti and the role.
Decoding pins the algorithm, so `alg: none` and algorithm swaps are refused, and every
claim is required. Times are checked against the service's clock (the server's clock,
which tests drive), not the machine's. Refresh tokens are random strings; only their SHA-256 is stored, so a
copy of the database cannot be replayed.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import jwt

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]
LEEWAY_SECONDS = 5
REFRESH_TOKEN_BYTES = 32
MIN_SECRET_BYTES = 32
VERIFIED_TOKENS_KEPT = 4096


class TokenProblem(StrEnum):
    EXPIRED = "expired"
    INVALID = "invalid"


class TokenError(Exception):
    def __init__(self, problem: TokenProblem) -> None:
        super().__init__(f"access token is {problem}")
        self.problem = problem


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    role: str
    token_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    token_id: str
    expires_at: datetime
    expires_in: int


class AccessTokens:
    def __init__(
        self,
        secret: str,
        *,
        issuer: str,
        audience: str,
        lifetime: timedelta,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"the JWT secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self._lifetime = lifetime
        self._now = now
        # A client sends the same token with every request: its signature is checked once.
        # Only tokens that verified are kept (a refused one raises, which is not cached).
        self._verified = functools.lru_cache(maxsize=VERIFIED_TOKENS_KEPT)(self._verify)

    def issue(self, user_id: str, role: str, now: datetime) -> IssuedToken:
        token_id = uuid.uuid4().hex
        expires_at = now + self._lifetime
        claims = {
            "sub": user_id,
            "role": role,
            "iss": self._issuer,
            "aud": self._audience,
            "iat": now,
            "nbf": now,
            "exp": expires_at,
            "jti": token_id,
        }
        token = jwt.encode(claims, self._secret, algorithm=ALGORITHM)
        return IssuedToken(token, token_id, expires_at, int(self._lifetime.total_seconds()))

    def decode(self, token: str) -> AccessClaims:
        claims, (not_before, issued) = self._verified(token)
        now, leeway = self._now(), timedelta(seconds=LEEWAY_SECONDS)
        if not_before > now + leeway or issued > now + leeway:
            raise TokenError(TokenProblem.INVALID)
        if claims.expires_at <= now - leeway:
            raise TokenError(TokenProblem.EXPIRED)
        return claims

    def _verify(self, token: str) -> tuple[AccessClaims, tuple[datetime, datetime]]:
        """The token's signature and claims, checked; its times are checked per use, in decode."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={
                    "require": REQUIRED_CLAIMS,
                    # Checked below against our clock instead of the machine's.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError:
            raise TokenError(TokenProblem.INVALID) from None
        role = claims.get("role")
        times = [claims.get(name) for name in ("exp", "nbf", "iat")]
        if not isinstance(claims["sub"], str) or not isinstance(role, str) or not all(_is_time(t) for t in times):
            raise TokenError(TokenProblem.INVALID)
        expires, not_before, issued = (datetime.fromtimestamp(t, UTC) for t in times)
        access = AccessClaims(user_id=claims["sub"], role=role, token_id=str(claims["jti"]), expires_at=expires)
        return access, (not_before, issued)


def _is_time(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 2**33


def new_refresh_token() -> tuple[str, str]:
    """(the token for the client, the hash to store)."""
    token = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
