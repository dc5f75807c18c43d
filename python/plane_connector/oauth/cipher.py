"""Encryption at rest for stored tokens: :class:`TokenCipher` (AES-256-GCM)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from typing import TYPE_CHECKING

from plane_connector import ConfigError

if TYPE_CHECKING:
    from plane_connector.secrets import SecretPolicy


class TokenCipher:
    """AES-256-GCM for token columns: ``v1.<key id>.<base64url(nonce + ciphertext)>``.

    The key is 32 bytes from a secret reference, written as base64 (standard or url-safe) or
    64 hex digits. Each value gets a random 96-bit nonce; the associated data binds a value to
    its row and column, so a ciphertext copied into another row does not decrypt.
    """

    PREFIX = "v1"

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigError("token encryption key must be 32 bytes (AES-256)")
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError:
            raise ConfigError(
                "encrypted token storage needs the 'cryptography' package "
                "(pip install 'plane_connector[oauth]')"
            ) from None
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(b"plane_connector token key" + key).hexdigest()[:8]

    def __repr__(self) -> str:
        return f"TokenCipher(key_id={self.key_id!r})"

    @classmethod
    def from_ref(cls, key_ref: str, *, policy: SecretPolicy | None = None) -> TokenCipher:
        """The cipher for the key behind a secret reference (resolved under ``policy``)."""
        from plane_connector.secrets import resolve

        return cls(decode_key(resolve(key_ref, policy=policy), key_ref))

    @staticmethod
    def generate_key() -> str:
        """A new random key, base64-encoded, for storing in a secret store."""
        return base64.b64encode(os.urandom(32)).decode("ascii")

    def encrypt(self, plaintext: str, aad: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), aad.encode("utf-8"))
        blob = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{self.PREFIX}.{self.key_id}.{blob}"

    def decrypt(self, token: str, aad: str) -> str:
        try:
            prefix, key_id, blob = token.split(".", 2)
        except ValueError:
            raise ConfigError("stored token is not in the encrypted format") from None
        if prefix != self.PREFIX:
            raise ConfigError(f"stored token has unknown format {prefix!r}")
        if key_id != self.key_id:
            raise ConfigError(
                f"stored token was encrypted with another key (key id {key_id}, this key is "
                f"{self.key_id}): configure the old key or re-authorize"
            )
        from cryptography.exceptions import InvalidTag

        try:
            raw = base64.urlsafe_b64decode(blob.encode("ascii"))
            plain = self._aead.decrypt(raw[:12], raw[12:], aad.encode("utf-8"))
        except (InvalidTag, binascii.Error, ValueError):
            raise ConfigError(
                "stored token failed authentication (tampered, or moved from another row)"
            ) from None
        return plain.decode("utf-8")


def decode_key(text: str, ref: str = "the key reference") -> bytes:
    """32 key bytes from base64 (standard or url-safe) or 64 hex digits."""
    value = text.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", value):
        return bytes.fromhex(value)
    for decoder in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            key = decoder(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            continue
        if len(key) == 32:
            return key
    raise ConfigError(
        f"the token encryption key behind {ref} must be 32 bytes, written as base64 or 64 hex "
        "digits (TokenCipher.generate_key() makes one)"
    )
