"""Who is calling: the bearer token of an HTTP request or a WebSocket's connection_init.

A request with no token is anonymous (public fields still work). A token that is present
but expired or invalid is remembered as such, so fields that need a user say precisely
why they refuse (UNAUTHENTICATED, "expired" or "not valid") instead of "sign in". Every
signed-in operation also checks that the user still exists and is active, so a disabled
user's unexpired tokens stop working at once.
"""

from __future__ import annotations

from server.api.context import Info
from server.api.errors import ApiError, ErrorCode
from server.models import User
from server.security.tokens import AccessClaims, TokenProblem
from server.users.problems import require_active

ADMIN_ROLE = "admin"


def _refusal(problem: TokenProblem | None) -> ApiError:
    if problem is TokenProblem.EXPIRED:
        return ApiError(ErrorCode.UNAUTHENTICATED, "The access token has expired; refresh it or sign in again.")
    if problem is TokenProblem.INVALID:
        return ApiError(ErrorCode.UNAUTHENTICATED, "The access token is not valid; sign in again.")
    return ApiError(ErrorCode.UNAUTHENTICATED, "Sign in first.")


def signed_in_claims(info: Info) -> AccessClaims:
    auth = info.context.auth
    claims = auth.claims
    if claims is None:
        raise _refusal(auth.problem)
    # A WebSocket connection outlives its token: check the expiry on every operation.
    if claims.expires_at <= info.context.services.clock.now():
        raise _refusal(TokenProblem.EXPIRED)
    return claims


async def signed_in_user(info: Info) -> User:
    claims = signed_in_claims(info)
    return require_active(await info.context.loaders.users.load(claims.user_id))


async def admin_user(info: Info) -> User:
    user = await signed_in_user(info)
    if user.role != ADMIN_ROLE:
        raise ApiError(ErrorCode.FORBIDDEN, "Only an admin may do this.")
    return user
