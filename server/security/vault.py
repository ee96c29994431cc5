"""The credential vault: broker keys encrypted with MultiFernet, keys kept outside the database.

The first Fernet key encrypts; every listed key decrypts, so keys rotate by putting a
new key first and re-encrypting (`python -m server rotate-keys`) before the old one is
dropped. Only a hint of a secret (its last four characters) is ever shown.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

HINT_LENGTH = 4


class VaultError(Exception):
    """A ciphertext that no configured key opens (wrong keys, or tampered data)."""


class Vault:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("the vault needs at least one Fernet key")
        try:
            self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])
        except ValueError:
            raise ValueError("FERNET_KEYS must be url-safe base64 Fernet keys (32 bytes each)") from None

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise VaultError("stored credential cannot be decrypted with the configured keys") from None

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt under the primary key."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken:
            raise VaultError("stored credential cannot be decrypted with the configured keys") from None


def generate_key() -> str:
    return Fernet.generate_key().decode()


def key_hint(secret: str) -> str:
    """What may be shown of a key: its last four characters."""
    return "…" + secret[-HINT_LENGTH:] if len(secret) > HINT_LENGTH * 2 else "…"
