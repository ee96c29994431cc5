"""connectBroker and register-with-keys, checked against the Alpaca-compatible facade on loopback.

Also the vault's promise: a key's plaintext is nowhere in the database files, the logs or
any answer, and `rotate-keys` re-encrypts every stored credential under the new key.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlmodel import select
from starlette.applications import Starlette

from server.app import create_app
from server.brokers.paper.clock import ManualClock
from server.models import BrokerConnection
from server.security.vault import Vault
from tests.utils.accounts import PASSWORD, REGISTER, as_user, register
from tests.utils.facade import KEY_ID, SECRET_KEY, Facade, serve_facade
from tests.utils.factories import make_settings
from tests.utils.graphql import execute
from tests.utils.paper import paper_world

pytestmark = pytest.mark.anyio
FIRST_KEY = Fernet.generate_key().decode()
JWT_SECRET = "j" * 48
CONNECT = """mutation($input: ConnectBrokerInput!) {
  connectBroker(input: $input) { connection { kind label isDefault keyHint } userErrors { field message code } }
}"""
CONNECTIONS = "{ me { brokerConnections { kind label isDefault keyHint } } }"


@pytest.fixture
async def facade() -> AsyncIterator[Facade]:
    async with serve_facade(paper_world()) as served:
        yield served


def _app(data_dir: Path, clock: ManualClock, trading_url: str, **overrides: Any) -> Starlette:
    settings = make_settings(
        data_dir, alpaca_trading_url=trading_url, fernet_keys=FIRST_KEY, jwt_secret=JWT_SECRET, **overrides
    )
    return create_app(settings, clock=clock)


@pytest.fixture
async def app(tmp_path: Path, clock: ManualClock, facade: Facade) -> AsyncIterator[Starlette]:
    application = _app(tmp_path / "data", clock, facade.url)
    async with application.router.lifespan_context(application):
        yield application


def _alpaca(kind: str = "ALPACA_PAPER", **extra: Any) -> dict[str, Any]:
    return {"input": {"kind": kind, "apiKey": KEY_ID, "secretKey": SECRET_KEY, **extra}}


async def test_register_with_alpaca_keys_makes_that_connection_the_default(client: httpx.AsyncClient) -> None:
    ada = await register(client, "ada", alpacaApiKey=KEY_ID, alpacaSecretKey=SECRET_KEY)
    connections = (await as_user(client, ada.access_token, CONNECTIONS))["data"]["me"]["brokerConnections"]
    assert connections == [
        {"kind": "PAPER", "label": "paper", "isDefault": False, "keyHint": None},
        {"kind": "ALPACA_PAPER", "label": "alpaca-paper", "isDefault": True, "keyHint": "…0001"},
    ]


async def test_register_with_refused_keys_creates_no_user(client: httpx.AsyncClient) -> None:
    variables = {
        "input": {
            "username": "ada",
            "email": "ada@example.com",
            "password": PASSWORD,
            "alpacaApiKey": KEY_ID,
            "alpacaSecretKey": "wrong-secret-0000000",
        }
    }
    payload = (await execute(client, REGISTER, variables))["data"]["register"]
    assert payload["userErrors"] == [
        {"field": ["input", "alpacaApiKey"], "message": "The broker refused these keys.", "code": "BROKER_AUTH_FAILED"}
    ]
    assert (await register(client, "ada")).user_id  # the name is still free


async def test_connect_broker_checks_keys_and_shows_only_a_hint(client: httpx.AsyncClient) -> None:
    ada = await register(client, "ada")
    added = (await as_user(client, ada.access_token, CONNECT, _alpaca()))["data"]["connectBroker"]
    assert added == {
        "connection": {"kind": "ALPACA_PAPER", "label": "alpaca-paper", "isDefault": True, "keyHint": "…0001"},
        "userErrors": [],
    }
    wrong = _alpaca(secretKey="wrong-secret-0000000", label="other")
    refused = (await as_user(client, ada.access_token, CONNECT, wrong))["data"]["connectBroker"]
    assert refused["connection"] is None
    assert [(e["field"], e["code"]) for e in refused["userErrors"]] == [(["input", "apiKey"], "BROKER_AUTH_FAILED")]
    again = (await as_user(client, ada.access_token, CONNECT, _alpaca()))["data"]["connectBroker"]
    assert [e["code"] for e in again["userErrors"]] == ["LABEL_TAKEN"]
    connections = (await as_user(client, ada.access_token, CONNECTIONS))["data"]["me"]["brokerConnections"]
    assert [(c["kind"], c["isDefault"]) for c in connections] == [("PAPER", False), ("ALPACA_PAPER", True)]


async def test_connect_broker_refusals(client: httpx.AsyncClient) -> None:
    ada = await register(client, "ada")
    cases = [
        (_alpaca("ALPACA_LIVE"), {"LIVE_TRADING_DISABLED"}),
        ({"input": {"kind": "PAPER", "apiKey": KEY_ID, "secretKey": SECRET_KEY}}, {"KEYS_NOT_ALLOWED"}),
        ({"input": {"kind": "ALPACA_PAPER"}}, {"KEYS_REQUIRED"}),
        (_alpaca(apiKey="has spaces in it", secretKey="x"), {"INVALID_KEY"}),
        ({"input": {"kind": "PAPER", "label": "x" * 65}}, {"INVALID_LABEL"}),
    ]
    for variables, codes in cases:
        payload = (await as_user(client, ada.access_token, CONNECT, variables))["data"]["connectBroker"]
        assert payload["connection"] is None
        assert {e["code"] for e in payload["userErrors"]} == codes, variables
    second_paper = {"input": {"kind": "PAPER", "label": "practice", "makeDefault": False}}
    added = (await as_user(client, ada.access_token, CONNECT, second_paper))["data"]["connectBroker"]
    assert added["connection"] == {"kind": "PAPER", "label": "practice", "isDefault": False, "keyHint": None}


async def test_connect_broker_needs_a_signed_in_user(client: httpx.AsyncClient) -> None:
    result = await execute(client, CONNECT, _alpaca())
    assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_an_unreachable_broker_is_a_clear_user_error(tmp_path: Path, clock: ManualClock) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    app = _app(tmp_path / "data", clock, f"http://127.0.0.1:{closed_port}", broker_timeout_seconds=2)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            ada = await register(client, "ada")
            payload = (await as_user(client, ada.access_token, CONNECT, _alpaca()))["data"]["connectBroker"]
    assert [e["code"] for e in payload["userErrors"]] == ["BROKER_UNAVAILABLE"]
    assert f"{closed_port}" not in str(payload)  # no broker URL in an answer


async def test_key_plaintext_is_absent_from_database_logs_and_answers(
    client: httpx.AsyncClient, app: Starlette, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers = []
    ada = await register(client, "ada", alpacaApiKey=KEY_ID, alpacaSecretKey=SECRET_KEY)
    answers.append(await as_user(client, ada.access_token, CONNECT, _alpaca(label="second")))
    answers.append(await as_user(client, ada.access_token, CONNECT, _alpaca(label="third", secretKey="bad-secret-99")))
    answers.append(await as_user(client, ada.access_token, CONNECTIONS))
    await app.state.services.engine.dispose()  # checkpoint nothing away: read every file as it is

    stored = await asyncio.to_thread(_database_bytes, app.state.services.settings.data_dir)
    logged = "\n".join(record.getMessage() + repr(record.__dict__) for record in caplog.records)
    for secret in (KEY_ID, SECRET_KEY, "bad-secret-99", PASSWORD):
        assert secret.encode() not in stored, secret
        assert secret not in logged, secret
        assert secret not in str(answers), secret

    async with app.state.services.sessions() as session:
        rows = (await session.exec(select(BrokerConnection).where(BrokerConnection.kind == "ALPACA_PAPER"))).all()
    assert len(rows) == 2
    assert {Vault([FIRST_KEY]).decrypt(row.secret_key_ciphertext or "") for row in rows} == {SECRET_KEY}


def _database_bytes(data_dir: Path) -> bytes:
    """The database file and its journal files, as they are on disk."""
    files = [path for path in data_dir.iterdir() if path.name.startswith("trading.db")]
    assert files
    return b"".join(path.read_bytes() for path in files)


async def test_rotate_keys_reencrypts_under_the_new_primary_key(client: httpx.AsyncClient, app: Starlette) -> None:
    await register(client, "ada", alpacaApiKey=KEY_ID, alpacaSecretKey=SECRET_KEY)
    settings = app.state.services.settings
    new_key = Fernet.generate_key().decode()
    environment = {
        **os.environ,
        "DATA_DIR": str(settings.data_dir),
        "DATABASE_URL": settings.database_url,
        "JWT_SECRET": JWT_SECRET,
        "FERNET_KEYS": f"{new_key},{FIRST_KEY}",
    }
    command = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "rotate-keys", env=environment, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        _, errors = await command.communicate()
    assert command.returncode == 0, errors.decode()
    assert b'"rotated": 1' in errors
    assert SECRET_KEY.encode() not in errors

    async with app.state.services.sessions() as session:
        [row] = (await session.exec(select(BrokerConnection).where(BrokerConnection.kind == "ALPACA_PAPER"))).all()
    only_new = Vault([new_key])  # the old key is no longer needed
    # Without the key a credential was made with, rotation reports it and fails.
    environment["FERNET_KEYS"] = Fernet.generate_key().decode()
    command = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "rotate-keys", env=environment, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        _, errors = await command.communicate()
    assert command.returncode == 1
    assert b"credential cannot be decrypted" in errors
    assert only_new.decrypt(row.api_key_ciphertext or "") == KEY_ID
    assert only_new.decrypt(row.secret_key_ciphertext or "") == SECRET_KEY
