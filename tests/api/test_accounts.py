"""Sign-up, sign-in, refresh rotation, sign-out and password change through GraphQL."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from server.app import create_app
from server.brokers.paper.clock import ManualClock
from server.models import AuditEvent
from tests.utils.accounts import LOGIN, PASSWORD, SESSION_FIELDS, as_user, login, register
from tests.utils.factories import make_settings
from tests.utils.graphql import error_codes, execute

pytestmark = pytest.mark.anyio
ME = "{ me { id username email role isActive brokerConnections { kind label isDefault keyHint } } }"
REFRESH = f"mutation($token: String!) {{ refreshToken(refreshToken: $token) {{ {SESSION_FIELDS} }} }}"
LOGOUT = "mutation($token: String!) { logout(refreshToken: $token) { ok userErrors { field code } } }"
CHANGE = """mutation($input: ChangePasswordInput!) {
  changePassword(input: $input) { ok userErrors { field message code } }
}"""


async def test_register_signs_in_with_a_paper_connection(client: httpx.AsyncClient) -> None:
    ada = await register(client, "ada")
    me = (await as_user(client, ada.access_token, ME))["data"]["me"]
    assert me == {
        "id": ada.user_id,
        "username": "ada",
        "email": "ada@example.com",
        "role": "USER",
        "isActive": True,
        "brokerConnections": [{"kind": "PAPER", "label": "paper", "isDefault": True, "keyHint": None}],
    }


async def test_me_is_null_without_a_token_and_an_error_with_a_bad_one(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    assert (await execute(client, "{ me { id } }"))["data"] == {"me": None}
    bad = await as_user(client, "not-a-jwt", "{ me { id } }")
    assert error_codes(bad) == ["UNAUTHENTICATED"]
    assert "not valid" in bad["errors"][0]["message"]
    ada = await register(client, "ada")
    clock.advance(16 * 60)
    expired = await as_user(client, ada.access_token, "{ me { id } }")
    assert error_codes(expired) == ["UNAUTHENTICATED"]
    assert "expired" in expired["errors"][0]["message"]


async def test_a_malformed_authorization_header_is_refused(client: httpx.AsyncClient) -> None:
    ada = await register(client, "ada")
    for header in (f"Basic {ada.access_token}", "Bearer", "Bearer    "):
        response = await client.post("/graphql", json={"query": "{ me { id } }"}, headers={"Authorization": header})
        assert error_codes(response.json()) == ["UNAUTHENTICATED"], header


async def test_register_refusals_are_user_errors_with_field_paths(client: httpx.AsyncClient) -> None:
    await register(client, "ada")
    variables = {"input": {"username": "ada", "email": "other@example.com", "password": PASSWORD}}
    taken = (await execute(client, SESSION_REGISTER, variables))["data"]["register"]
    assert taken["accessToken"] is None
    assert taken["userErrors"] == [
        {"field": ["input", "username"], "message": "That username is taken.", "code": "USERNAME_TAKEN"}
    ]
    weak = {"input": {"username": "grace", "email": "grace@example.com", "password": "password123"}}
    errors = (await execute(client, SESSION_REGISTER, weak))["data"]["register"]["userErrors"]
    assert {(tuple(e["field"]), e["code"]) for e in errors} >= {(("input", "password"), "PASSWORD_TOO_COMMON")}


SESSION_REGISTER = f"mutation($input: RegisterInput!) {{ register(input: $input) {{ {SESSION_FIELDS} }} }}"


async def test_login_by_username_or_email(client: httpx.AsyncClient) -> None:
    ada = await register(client, "ada")
    for name in ("ada", "ADA@example.com"):
        payload = (await login(client, name))["data"]["login"]
        assert payload["user"]["id"] == ada.user_id
        assert payload["expiresIn"] == 900
    wrong = (await login(client, "ada", "not the password"))["data"]["login"]
    assert wrong["accessToken"] is None
    assert [e["code"] for e in wrong["userErrors"]] == ["INVALID_CREDENTIALS"]


async def test_refresh_rotates_and_reuse_revokes_the_family(client: httpx.AsyncClient) -> None:
    ada = await register(client, "ada")
    first = (await execute(client, REFRESH, {"token": ada.refresh_token}))["data"]["refreshToken"]
    assert first["userErrors"] == []
    assert first["refreshToken"] != ada.refresh_token
    assert (await as_user(client, first["accessToken"], "{ me { id } }"))["data"]["me"]["id"] == ada.user_id

    reused = (await execute(client, REFRESH, {"token": ada.refresh_token}))["data"]["refreshToken"]
    assert reused["userErrors"][0]["code"] == "REFRESH_TOKEN_REUSED"
    assert reused["userErrors"][0]["field"] == ["refreshToken"]
    # The thief's reuse ended the legitimate session too: its newer token is dead.
    after = (await execute(client, REFRESH, {"token": first["refreshToken"]}))["data"]["refreshToken"]
    assert after["userErrors"][0]["code"] == "INVALID_REFRESH_TOKEN"
    assert after["accessToken"] is None


async def test_logout_ends_the_session(client: httpx.AsyncClient) -> None:
    ada = await register(client, "ada")
    assert (await execute(client, LOGOUT, {"token": ada.refresh_token}))["data"]["logout"] == {
        "ok": True,
        "userErrors": [],
    }
    refused = (await execute(client, REFRESH, {"token": ada.refresh_token}))["data"]["refreshToken"]
    assert refused["accessToken"] is None
    unknown = (await execute(client, LOGOUT, {"token": "never-issued"}))["data"]["logout"]
    assert unknown == {"ok": False, "userErrors": [{"field": ["refreshToken"], "code": "INVALID_REFRESH_TOKEN"}]}


async def test_change_password_needs_the_current_one_and_ends_other_sessions(client: httpx.AsyncClient) -> None:
    ada = await register(client, "ada")
    new_password = "quiet-Harbor-91-lantern"
    wrong = await as_user(
        client, ada.access_token, CHANGE, {"input": {"currentPassword": "nope", "newPassword": new_password}}
    )
    assert wrong["data"]["changePassword"]["userErrors"][0]["field"] == ["input", "currentPassword"]
    weak = await as_user(
        client, ada.access_token, CHANGE, {"input": {"currentPassword": PASSWORD, "newPassword": "ada"}}
    )
    assert weak["data"]["changePassword"]["ok"] is False
    assert all(e["field"] == ["input", "newPassword"] for e in weak["data"]["changePassword"]["userErrors"])
    done = await as_user(
        client, ada.access_token, CHANGE, {"input": {"currentPassword": PASSWORD, "newPassword": new_password}}
    )
    assert done["data"]["changePassword"] == {"ok": True, "userErrors": []}
    assert (await execute(client, REFRESH, {"token": ada.refresh_token}))["data"]["refreshToken"]["accessToken"] is None
    assert (await login(client, "ada", new_password))["data"]["login"]["userErrors"] == []
    assert (await login(client, "ada"))["data"]["login"]["userErrors"][0]["code"] == "INVALID_CREDENTIALS"


async def test_change_password_needs_a_signed_in_user(client: httpx.AsyncClient) -> None:
    result = await execute(client, CHANGE, {"input": {"currentPassword": PASSWORD, "newPassword": "x" * 20}})
    assert error_codes(result) == ["UNAUTHENTICATED"]
    assert result["data"] is None


async def test_the_sixth_wrong_password_is_throttled(client: httpx.AsyncClient) -> None:
    await register(client, "ada")
    for _ in range(5):
        payload = (await login(client, "ada", "wrong password"))["data"]["login"]
        assert [e["code"] for e in payload["userErrors"]] == ["INVALID_CREDENTIALS"]
    throttled = await login(client, "ada")  # even the right password, until the window drains
    assert error_codes(throttled) == ["RATE_LIMITED"]
    assert throttled["errors"][0]["extensions"]["retryAfter"] >= 1
    # Another username from the same address is not locked out by ada's failures.
    await register(client, "grace")
    assert (await login(client, "grace"))["data"]["login"]["userErrors"] == []


async def test_successful_logins_do_not_count_as_failures(client: httpx.AsyncClient) -> None:
    await register(client, "ada")
    for _ in range(7):
        assert (await login(client, "ada"))["data"]["login"]["userErrors"] == []


async def test_mutations_are_refused_over_get(client: httpx.AsyncClient) -> None:
    query = 'mutation { login(input: {username: "ada", password: "x"}) { accessToken } }'
    response = await client.get("/graphql", params={"query": query})
    assert response.status_code == 400
    assert response.text == "mutations are not allowed when using GET"


async def test_malformed_variables_never_echo_a_password_or_key(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "Sup3r-Secret-Passphrase"
    connect = "mutation($i: ConnectBrokerInput!) { connectBroker(input: $i) { userErrors { code } } }"
    cases = [
        (LOGIN, {"input": {"username": "ada", "password": secret, "extra": 1}}),  # unknown field
        (LOGIN, {"input": {"username": secret}}),  # missing field
        (LOGIN, {"input": secret}),  # not an object
        (connect, {"i": {"kind": secret, "secretKey": secret}}),  # not an enum value
        (connect, {"i": {"kind": "PAPER", "label": 12345678901}}),  # wrong scalar type
    ]
    answers = [await execute(client, query, variables) for query, variables in cases]
    assert all(error_codes(answer) == ["BAD_USER_INPUT"] for answer in answers)
    assert secret not in str(answers)
    assert "12345678901" not in str(answers)
    assert secret not in caplog.text
    assert (
        answers[0]["errors"][0]["message"]
        == "Expected value of type 'LoginInput' not to include unknown field 'extra'."
    )


async def test_each_user_sees_only_themselves(client: httpx.AsyncClient) -> None:
    ada = await register(client, "ada")
    grace = await register(client, "grace")
    ada_view = (await as_user(client, ada.access_token, ME))["data"]["me"]
    grace_view = (await as_user(client, grace.access_token, ME))["data"]["me"]
    assert (ada_view["id"], grace_view["id"]) == (ada.user_id, grace.user_id)
    assert ada_view["username"] == "ada"
    assert grace_view["username"] == "grace"
    # Grace's refresh token cannot be spent to become Ada, nor the other way round.
    refreshed = (await execute(client, REFRESH, {"token": grace.refresh_token}))["data"]["refreshToken"]
    assert refreshed["user"]["id"] == grace.user_id


async def test_a_burst_of_concurrent_guesses_gets_no_more_tries(client: httpx.AsyncClient) -> None:
    await register(client, "ada")
    results = await asyncio.gather(*(login(client, "ada", f"guess number {n}") for n in range(12)))
    judged = [r for r in results if "errors" not in r]
    assert len(judged) <= 5
    assert all(error_codes(r) == ["RATE_LIMITED"] for r in results if "errors" in r)


async def test_sign_in_attempts_are_limited_per_address(tmp_path: Path, clock: ManualClock) -> None:
    settings = make_settings(tmp_path / "data", login_attempts_per_ip=3)
    app = create_app(settings, clock=clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        await register(client, "ada")
        results = [await login(client, name) for name in ("ada", "nobody", "someone", "ada")]
    assert [error_codes(result) for result in results] == [[], [], [], ["RATE_LIMITED"]]


async def test_behind_a_trusted_proxy_the_forwarded_address_is_recorded(tmp_path: Path, clock: ManualClock) -> None:
    settings = make_settings(tmp_path / "data", trusted_proxies="127.0.0.1")
    app = create_app(settings, clock=clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        response = await client.post(
            "/graphql",
            json={"query": LOGIN, "variables": {"input": {"username": "nobody", "password": PASSWORD}}},
            headers={"X-Forwarded-For": "1.2.3.4, 198.51.100.7"},
        )
        assert response.status_code == 200
        async with app.state.services.sessions() as session:
            addresses = (await session.exec(select(AuditEvent.ip).where(AuditEvent.action == "login"))).all()
    assert addresses == ["198.51.100.7"]
