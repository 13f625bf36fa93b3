"""Secrets at rest: AES-GCM under a key ring from `{P}ENCRYPTION_KEYS`.

The first key encrypts; every key decrypts, so keys rotate by prepending a new
one and running `clockify-addons rotate-keys APP`. Each ciphertext is bound to
the row it belongs to (associated data), so it cannot be moved to another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from addon_core.errors import AddonError, ConfigError

log = logging.getLogger(__name__)

_VERSION = "v1"
_NONCE_BYTES = 12


class DecryptionError(AddonError):
    """A stored secret cannot be decrypted with any key of the ring."""


def _key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def decode_key(text: str) -> bytes:
    """Decode one base64 key of 32 bytes, or raise ValueError saying what is expected."""
    padded = text.strip() + "=" * (-len(text.strip()) % 4)
    try:
        key = base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
    except (binascii.Error, ValueError):
        raise ValueError("each key must be base64 of 32 random bytes") from None
    if len(key) != 32:
        raise ValueError(f"each key must be base64 of 32 random bytes, got {len(key)} bytes")
    return key


def generate_key() -> str:
    """Return a new random key, base64-encoded, for `{P}ENCRYPTION_KEYS`."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


class KeyRing:
    """Encrypt with the first key, decrypt with whichever key made the ciphertext."""

    def __init__(self, keys: list[bytes], *, variable: str = "ENCRYPTION_KEYS") -> None:
        if not keys:
            raise ValueError("a key ring needs at least one key")
        self._variable = variable
        self._primary_id = _key_id(keys[0])
        self._ciphers = {_key_id(k): AESGCM(k) for k in keys}

    def encrypt(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[self._primary_id].encrypt(
            nonce, plaintext.encode(), context.encode()
        )
        body = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{_VERSION}.{self._primary_id}.{body}"

    def decrypt(self, token: str, context: str) -> str:
        try:
            version, key_id, body = token.split(".", 2)
            raw = base64.urlsafe_b64decode(body)
        except (ValueError, binascii.Error):
            raise DecryptionError("stored secret is not in the expected format") from None
        cipher = self._ciphers.get(key_id)
        if version != _VERSION or cipher is None:
            raise DecryptionError(
                f"stored secret was encrypted with key {key_id}, which is not in {self._variable}"
            )
        try:
            return cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode()).decode()
        except (InvalidTag, ValueError):
            raise DecryptionError("stored secret failed authentication") from None

    def is_current(self, token: str) -> bool:
        """Tell whether a ciphertext was made with the primary key."""
        return token.startswith(f"{_VERSION}.{self._primary_id}.")


def load_key_ring(
    configured: list[str], *, variable: str, data_dir: Path, app_name: str, production: bool
) -> KeyRing:
    """Build the key ring from settings; outside production, fall back to a local dev key."""
    if configured:
        try:
            return KeyRing([decode_key(k) for k in configured], variable=variable)
        except ValueError as exc:
            raise ConfigError(f"{variable}: {exc}") from None
    if production:
        raise ConfigError(
            f"{variable}: required in production; generate a key with "
            "`clockify-addons generate-key`"
        )
    path = data_dir / f"{app_name}-dev-encryption.key"
    if path.exists():
        try:
            key = decode_key(path.read_text())
        except ValueError as exc:
            raise ConfigError(
                f"{variable}: the development key in {path} is corrupt ({exc})"
            ) from None
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = generate_key()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return load_key_ring(
                configured, variable=variable, data_dir=data_dir, app_name=app_name,
                production=production,
            )  # fmt: skip
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        key = decode_key(text)
    log.warning(
        "%s is not set: using the development key in %s; set it before real use", variable, path
    )
    return KeyRing([key], variable=variable)
