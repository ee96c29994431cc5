"""Who is calling, from a bearer token: the HTTP Authorization header or connection_init's payload."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from server.security.tokens import AccessClaims, AccessTokens, TokenError, TokenProblem


@dataclass(frozen=True, slots=True)
class Authentication:
    claims: AccessClaims | None = None
    problem: TokenProblem | None = None  # a token was presented and refused


ANONYMOUS = Authentication()


def authenticate(tokens: AccessTokens, authorization: object) -> Authentication:
    """`authorization` is the header's value (or connection_init's): "Bearer <token>"."""
    if authorization is None or authorization == "":
        return ANONYMOUS
    if not isinstance(authorization, str):
        return Authentication(problem=TokenProblem.INVALID)
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return Authentication(problem=TokenProblem.INVALID)
    try:
        return Authentication(claims=tokens.decode(token.strip()))
    except TokenError as error:
        return Authentication(problem=error.problem)


def client_ip(connection: HTTPConnection | None, trusted_proxies: Collection[str] = ()) -> str | None:
    """The caller's address: the peer's, or when the peer is a trusted proxy, the nearest
    address in X-Forwarded-For that is not one of ours (earlier entries can be forged)."""
    if connection is None or connection.client is None:
        return None
    peer = connection.client.host
    if peer not in trusted_proxies:
        return peer
    forwarded = [hop.strip() for hop in connection.headers.get("x-forwarded-for", "").split(",") if hop.strip()]
    for hop in reversed(forwarded):
        if hop not in trusted_proxies:
            return hop
    return peer
