"""Where the JWT secret and the Fernet keys come from.

In production both must be configured (JWT_SECRET, FERNET_KEYS), and a secret that is
short or a well-known example value is refused: the server does not start. In
development, missing ones are generated once and kept in DATA_DIR/secrets.json (owner
read/write only), with a warning, so restarts keep sessions and stored broker keys valid.
"""

from __future__ import annotations

import json
import logging
import os
import secrets as random_secrets
from dataclasses import dataclass
from pathlib import Path

from server.security.tokens import MIN_SECRET_BYTES
from server.security.vault import Vault, generate_key
from server.settings import Environment, Settings

logger = logging.getLogger(__name__)
SECRETS_FILE = "secrets.json"
KNOWN_EXAMPLE_SECRETS = frozenset(
    {"your-jwt-secret-key", "change-me", "changeme", "secret", "jwt-secret", "your-secret-key", "development"}
)


class ConfigurationError(Exception):
    """The server must not start with this configuration."""


@dataclass(frozen=True, slots=True)
class ServerSecrets:
    jwt_secret: str
    fernet_keys: list[str]


def _split_keys(raw: str) -> list[str]:
    return [key.strip() for key in raw.split(",") if key.strip()]


def _check_jwt_secret(secret: str) -> None:
    if secret.strip().lower() in KNOWN_EXAMPLE_SECRETS or len(secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigurationError(f"JWT_SECRET must be a random value of at least {MIN_SECRET_BYTES} bytes")


def _check_fernet_keys(keys: list[str]) -> None:
    try:
        Vault(keys)
    except ValueError as error:
        raise ConfigurationError(str(error)) from None


def _load_or_create(path: Path) -> dict[str, object]:
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    stored = {"jwt_secret": random_secrets.token_urlsafe(48), "fernet_keys": [generate_key()]}
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(stored, handle)
    return stored


def resolve_secrets(settings: Settings) -> ServerSecrets:
    jwt_secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
    fernet_keys = _split_keys(settings.fernet_keys.get_secret_value()) if settings.fernet_keys else []
    if settings.environment is Environment.PRODUCTION:
        if not jwt_secret or not fernet_keys:
            raise ConfigurationError("in production, JWT_SECRET and FERNET_KEYS must both be set")
    elif not jwt_secret or not fernet_keys:
        path = settings.data_dir / SECRETS_FILE
        stored = _load_or_create(path)
        logger.warning(
            "development mode: using generated secrets kept in %s; set JWT_SECRET and FERNET_KEYS in production",
            path,
            extra={"category": "security"},
        )
        jwt_secret = jwt_secret or str(stored["jwt_secret"])
        fernet_keys = fernet_keys or [str(key) for key in stored["fernet_keys"]]  # type: ignore[union-attr]
    _check_jwt_secret(jwt_secret)
    _check_fernet_keys(fernet_keys)
    return ServerSecrets(jwt_secret, fernet_keys)
