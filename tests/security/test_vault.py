from __future__ import annotations

import pytest

from server.security.vault import Vault, VaultError, generate_key, key_hint


def test_encrypts_decrypts_and_hides_the_plaintext() -> None:
    vault = Vault([generate_key()])
    sealed = vault.encrypt("PKSECRETKEY1234")
    assert "PKSECRETKEY1234" not in sealed
    assert vault.decrypt(sealed) == "PKSECRETKEY1234"


def test_rotation_moves_ciphertexts_to_the_primary_key() -> None:
    old, new = generate_key(), generate_key()
    sealed = Vault([old]).encrypt("api-secret")
    both = Vault([new, old])
    rotated = both.rotate(sealed)
    assert Vault([new]).decrypt(rotated) == "api-secret"
    with pytest.raises(VaultError):
        Vault([new]).decrypt(sealed)


def test_wrong_keys_and_tampering_are_errors_without_the_plaintext() -> None:
    sealed = Vault([generate_key()]).encrypt("api-secret")
    with pytest.raises(VaultError) as raised:
        Vault([generate_key()]).decrypt(sealed)
    assert "api-secret" not in str(raised.value)
    with pytest.raises(VaultError):
        Vault([generate_key()]).decrypt(sealed[:-4] + "AAAA")


def test_keys_are_checked() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Vault([])
    with pytest.raises(ValueError, match="Fernet keys"):
        Vault(["not-a-key"])


def test_hints_show_only_the_last_four() -> None:
    assert key_hint("PKABCDEFGHIJ1234") == "…1234"
    assert key_hint("short") == "…"
