from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from server.security.secrets import ConfigurationError, resolve_secrets
from server.security.vault import generate_key
from tests.utils.factories import make_settings

GOOD_SECRET = "k" * 40


def test_development_generates_persists_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(tmp_path)
    with caplog.at_level(logging.WARNING):
        first = resolve_secrets(settings)
    again = resolve_secrets(settings)
    assert first == again  # restarts keep tokens and stored keys valid
    path = tmp_path / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "development mode" in caplog.text
    assert first.jwt_secret not in caplog.text


def test_production_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="must both be set"):
        resolve_secrets(make_settings(tmp_path, environment="production"))
    assert not (tmp_path / "secrets.json").exists()


@pytest.mark.parametrize("secret", ["your-jwt-secret-key", "short", "changeme"])
def test_production_refuses_default_or_short_jwt_secrets(tmp_path: Path, secret: str) -> None:
    settings = make_settings(tmp_path, environment="production", jwt_secret=secret, fernet_keys=generate_key())
    with pytest.raises(ConfigurationError, match="JWT_SECRET"):
        resolve_secrets(settings)


def test_production_with_good_secrets_and_several_keys(tmp_path: Path) -> None:
    primary, old = generate_key(), generate_key()
    settings = make_settings(
        tmp_path, environment="production", jwt_secret=GOOD_SECRET, fernet_keys=f"{primary}, {old}"
    )
    resolved = resolve_secrets(settings)
    assert resolved.fernet_keys == [primary, old]


def test_bad_fernet_keys_are_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, environment="production", jwt_secret=GOOD_SECRET, fernet_keys="nope")
    with pytest.raises(ConfigurationError, match="Fernet"):
        resolve_secrets(settings)


def test_secrets_never_show_in_settings_repr(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, jwt_secret=GOOD_SECRET, fernet_keys=generate_key())
    assert GOOD_SECRET not in repr(settings)
    assert GOOD_SECRET not in str(settings.model_dump())
