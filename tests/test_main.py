"""`python -m server` as a user runs it: a real uvicorn process with no configuration."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import httpx

from tests.utils.processes import SHUTDOWN_TIMEOUT_SECONDS, clean_environment, run_server

QUERY = '{ quote(symbol: "AAPL") { symbol bidPrice askPrice } }'


def test_zero_configuration_server_answers_quotes(tmp_path: Path) -> None:
    with run_server(tmp_path) as server, httpx.Client(base_url=server.base_url, timeout=10) as http:
        assert server.base_url.startswith("http://127.0.0.1:")
        answer = http.post("/graphql", json={"query": QUERY}).json()
        ready = http.get("/readyz")
        health = http.get("/healthz")
        bad_json = http.post("/graphql", content=b"{", headers={"content-type": "application/json"})

    quote = answer["data"]["quote"]
    assert quote["symbol"] == "AAPL"
    assert re.fullmatch(r"\d+\.\d{2}", quote["bidPrice"])
    assert re.fullmatch(r"\d+\.\d{2}", quote["askPrice"])
    assert Decimal(quote["bidPrice"]) < Decimal(quote["askPrice"])
    assert ready.status_code == 200
    assert health.json() == {"status": "ok"}
    assert bad_json.status_code == 400
    assert (tmp_path / "data" / "trading.db").is_file()
    # uvicorn shuts down cleanly, then re-raises the SIGTERM it caught (exit status -15).
    assert server.process.returncode in {0, -signal.SIGTERM}
    messages = [entry["msg"] for entry in server.logs()]
    assert "server ready" in messages
    assert "Application shutdown complete." in messages
    assert not any(entry["level"] == "ERROR" or "exc" in entry for entry in server.logs())


def test_migrate_command_builds_the_database(tmp_path: Path) -> None:
    database = tmp_path / "custom.db"
    env = clean_environment(DATABASE_URL=f"sqlite:///{database}")
    subprocess.run(
        [sys.executable, "-m", "server", "migrate"],
        cwd=tmp_path,
        env=env,
        check=True,
        timeout=SHUTDOWN_TIMEOUT_SECONDS * 4,
        capture_output=True,
    )
    with closing(sqlite3.connect(database)) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"users", "orders", "order_events", "alembic_version"} <= tables


def test_production_without_secrets_refuses_to_start(tmp_path: Path) -> None:
    env = clean_environment(ENVIRONMENT="production")
    result = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--port", "0"],
        cwd=tmp_path,
        env=env,
        timeout=60,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "refusing to start" in result.stderr
    assert "JWT_SECRET and FERNET_KEYS" in result.stderr
    assert "Traceback" not in result.stderr


def test_grant_admin_makes_a_registered_user_an_admin(tmp_path: Path) -> None:
    register = {
        "query": "mutation($i: RegisterInput!) { register(input: $i) { user { id } userErrors { code } } }",
        "variables": {"i": {"username": "root", "email": "root@example.com", "password": "tidal-Orbit-57-marmalade"}},
    }
    with run_server(tmp_path) as server, httpx.Client(base_url=server.base_url, timeout=10) as http:
        assert http.post("/graphql", json=register).json()["data"]["register"]["userErrors"] == []

    def grant(username: str) -> int:
        command = [sys.executable, "-m", "server", "grant-admin", username]
        env = clean_environment()
        return subprocess.run(command, cwd=tmp_path, env=env, timeout=60, capture_output=True, check=False).returncode

    assert grant("ROOT") == 0
    assert grant("nobody") == 1
    with closing(sqlite3.connect(tmp_path / "data" / "trading.db")) as connection:
        roles = dict(connection.execute("SELECT username, role FROM users"))
    assert roles == {"root": "admin"}
