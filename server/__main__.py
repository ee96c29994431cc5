"""Command line: `python -m server [serve|migrate|rotate-keys|grant-admin|paper-exchange]`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import uvicorn
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.applications import Starlette

from server.app import create_app
from server.brokers.paper.facade import standalone
from server.db import create_engine, session_factory, upgrade_database
from server.log import configure_logging
from server.security.secrets import ConfigurationError, resolve_secrets
from server.security.vault import Vault
from server.settings import Settings
from server.users.admin import grant_admin
from server.users.rotation import rotate_credentials
from server.ws_protocol import CoalescingWebSocketProtocol

logger = logging.getLogger("server")
T = TypeVar("T")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m server", description="GraphQL trading API over Alpaca")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the GraphQL server (the default)")
    serve.add_argument("--host", help="interface to bind (default: HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: PORT or 8081; 0 picks a free one)")
    commands.add_parser("migrate", help="apply database migrations and exit")
    commands.add_parser("rotate-keys", help="re-encrypt stored broker keys with the first FERNET_KEYS key")
    grant = commands.add_parser("grant-admin", help="give an existing user the admin role")
    grant.add_argument("username")
    exchange = commands.add_parser("paper-exchange", help="serve the paper exchange over Alpaca's REST and streams")
    standalone.add_arguments(exchange)
    return parser


# How uvicorn serves the app (the in-process test server uses the same).
UVICORN_OPTIONS: dict[str, Any] = {
    "log_config": None,
    "access_log": False,
    "lifespan": "on",
    "proxy_headers": False,  # trusted proxies are the app's own setting
    "ws": CoalescingWebSocketProtocol,
}


def run_uvicorn(app: Starlette, host: str, port: int) -> None:
    uvicorn.run(app, host=host, port=port, **UVICORN_OPTIONS)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "paper-exchange":
        configure_logging("INFO")
        run_uvicorn(standalone.build_app(args), args.host, args.port)
        return 0
    overrides = {k: v for k, v in vars(args).items() if k in {"host", "port"} and v is not None}
    settings = Settings(**overrides)
    configure_logging(settings.log_level)
    try:
        secrets = resolve_secrets(settings)
    except ConfigurationError as error:
        logger.error("refusing to start: %s", error)
        return 2
    if args.command in {"migrate", "rotate-keys", "grant-admin"}:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade_database(settings.database_url)
        logger.info("migrations applied")
    if args.command == "migrate":
        return 0
    if args.command == "rotate-keys":
        vault = Vault(secrets.fernet_keys)
        report = asyncio.run(
            _with_database(settings.database_url, lambda sessions: rotate_credentials(sessions, vault))
        )
        return 0 if not report.unreadable else 1
    if args.command == "grant-admin":
        granted = asyncio.run(
            _with_database(settings.database_url, lambda sessions: grant_admin(sessions, args.username))
        )
        if not granted:
            logger.error("no such user", extra={"username": args.username})
            return 1
        return 0
    run_uvicorn(create_app(settings, secrets=secrets), settings.host, settings.port)
    return 0


async def _with_database(database_url: str, work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]) -> T:
    """Run one command's database work on its own engine, disposed afterwards."""
    engine = create_engine(database_url)
    try:
        return await work(session_factory(engine))
    finally:
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
