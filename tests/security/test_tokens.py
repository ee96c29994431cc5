from __future__ import annotations

import base64
import json
import warnings
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning

from server.security.tokens import AccessTokens, TokenError, TokenProblem, hash_refresh_token, new_refresh_token

SECRET = "s" * 48
NOW = datetime.now(UTC).replace(microsecond=0)


def tokens(secret: str = SECRET, audience: str = "trading-api") -> AccessTokens:
    return AccessTokens(secret, issuer="alpaca-graphql", audience=audience, lifetime=timedelta(minutes=15))


def test_round_trip_carries_every_claim() -> None:
    issued = tokens().issue("user-1", "admin", NOW)
    claims = jwt.decode(issued.token, SECRET, algorithms=["HS256"], audience="trading-api")
    assert set(claims) == {"sub", "role", "iss", "aud", "iat", "nbf", "exp", "jti"}
    decoded = tokens().decode(issued.token)
    assert (decoded.user_id, decoded.role, decoded.token_id) == ("user-1", "admin", issued.token_id)
    assert decoded.expires_at == NOW + timedelta(minutes=15)
    assert issued.expires_in == 900


def _refused(token: str, problem: TokenProblem = TokenProblem.INVALID) -> None:
    with pytest.raises(TokenError) as raised:
        tokens().decode(token)
    assert raised.value.problem is problem


def test_expired_tokens_are_refused() -> None:
    old = tokens().issue("user-1", "user", NOW - timedelta(hours=1))
    _refused(old.token, TokenProblem.EXPIRED)


def test_tampered_signature_is_refused() -> None:
    token = tokens().issue("user-1", "user", NOW).token
    head, _body, signature = token.split(".")
    forged_body = (
        base64.urlsafe_b64encode(
            json.dumps({**jwt.decode(token, options={"verify_signature": False}), "role": "admin"}).encode()
        )
        .rstrip(b"=")
        .decode()
    )
    _refused(f"{head}.{forged_body}.{signature}")
    _refused(tokens("x" * 48).issue("user-1", "user", NOW).token)


def test_alg_none_and_swapped_algorithms_are_refused() -> None:
    claims = jwt.decode(tokens().issue("user-1", "user", NOW).token, options={"verify_signature": False})
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    _refused(unsigned)
    with warnings.catch_warnings():  # crafting the attack token: PyJWT frowns on the key length
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        swapped = jwt.encode(claims, SECRET, algorithm="HS512")  # same secret, other algorithm
    _refused(swapped)


def test_wrong_audience_issuer_and_missing_claims_are_refused() -> None:
    _refused(tokens(audience="someone-else").issue("user-1", "user", NOW).token)
    claims = jwt.decode(tokens().issue("user-1", "user", NOW).token, options={"verify_signature": False})
    for missing in ("jti", "nbf", "sub"):
        _refused(jwt.encode({k: v for k, v in claims.items() if k != missing}, SECRET, algorithm="HS256"))
    _refused(jwt.encode({**claims, "iss": "elsewhere"}, SECRET, algorithm="HS256"))
    _refused("not.a.token")


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        tokens("too-short")


def test_refresh_tokens_are_random_and_stored_hashed() -> None:
    first, first_hash = new_refresh_token()
    second, _ = new_refresh_token()
    assert first != second
    assert len(first) >= 40
    assert first_hash == hash_refresh_token(first)
    assert first not in first_hash


def test_times_are_checked_against_the_injected_clock() -> None:
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    clock = [long_ago]
    service = AccessTokens(
        SECRET, issuer="alpaca-graphql", audience="trading-api", lifetime=timedelta(minutes=15), now=lambda: clock[0]
    )
    token = service.issue("user-1", "user", long_ago).token
    assert service.decode(token).user_id == "user-1"  # valid in the clock's time, not the machine's
    clock[0] = long_ago + timedelta(minutes=16)
    with pytest.raises(TokenError) as raised:
        service.decode(token)
    assert raised.value.problem is TokenProblem.EXPIRED


def test_tokens_from_the_future_are_refused() -> None:
    _refused(tokens().issue("user-1", "user", NOW + timedelta(hours=1)).token)


def test_non_numeric_times_are_refused() -> None:
    claims = jwt.decode(tokens().issue("user-1", "user", NOW).token, options={"verify_signature": False})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        forged = jwt.encode({**claims, "exp": True}, SECRET, algorithm="HS256")
    _refused(forged)


def test_a_token_used_again_is_verified_once_and_its_times_are_checked_at_every_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verified: list[str] = []
    real_decode = jwt.decode

    def counting_decode(token: str, *args: object, **kwargs: object) -> object:
        verified.append(token)
        return real_decode(token, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode", counting_decode)
    clock = [NOW]
    service = AccessTokens(
        SECRET, issuer="alpaca-graphql", audience="trading-api", lifetime=timedelta(minutes=15), now=lambda: clock[0]
    )
    token = service.issue("user-1", "user", NOW).token
    assert [service.decode(token).user_id for _ in range(3)] == ["user-1"] * 3
    assert len(verified) == 1
    clock[0] = NOW + timedelta(minutes=16)
    with pytest.raises(TokenError) as raised:
        service.decode(token)
    assert raised.value.problem is TokenProblem.EXPIRED
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for _ in range(2):  # a refused token is checked afresh each time, never kept
        with pytest.raises(TokenError):
            service.decode(forged)
    assert verified.count(forged) == 2
