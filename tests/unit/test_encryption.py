"""Secrets at rest: AES-GCM round trips, context binding, tampering and key rotation."""

from __future__ import annotations

import base64
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from addon_core.errors import ConfigError
from addon_core.storage.encryption import (
    DecryptionError,
    KeyRing,
    decode_key,
    generate_key,
    load_key_ring,
)

CONTEXT = "installation:ws-1:auth_token"
VARIABLE = "API_STUDIO_ENCRYPTION_KEYS"


def ring(*keys: str) -> KeyRing:
    return KeyRing([decode_key(k) for k in keys])


@pytest.fixture
def key() -> str:
    return generate_key()


def test_encrypted_secret_decrypts_to_the_plaintext(key: str) -> None:
    keys = ring(key)
    ciphertext = keys.encrypt("s3cret-token", CONTEXT)

    assert "s3cret-token" not in ciphertext
    assert keys.decrypt(ciphertext, CONTEXT) == "s3cret-token"


def test_same_plaintext_encrypts_differently_each_time(key: str) -> None:
    keys = ring(key)

    assert keys.encrypt("s3cret", CONTEXT) != keys.encrypt("s3cret", CONTEXT)


def test_ciphertext_is_bound_to_its_context(key: str) -> None:
    keys = ring(key)
    ciphertext = keys.encrypt("s3cret", CONTEXT)

    with pytest.raises(DecryptionError):
        keys.decrypt(ciphertext, "installation:ws-2:auth_token")


def _flip_last_byte(ciphertext: str) -> str:
    version, key_id, body = ciphertext.split(".", 2)
    raw = bytearray(base64.urlsafe_b64decode(body))
    raw[-1] ^= 0x01
    return f"{version}.{key_id}.{base64.urlsafe_b64encode(bytes(raw)).decode()}"


def _truncate(ciphertext: str) -> str:
    version, key_id, _ = ciphertext.split(".", 2)
    return f"{version}.{key_id}.AAAA"


def _empty_body(ciphertext: str) -> str:
    return ciphertext.rsplit(".", 1)[0] + "."


@pytest.mark.parametrize(
    "tamper",
    [
        _flip_last_byte,
        _truncate,
        _empty_body,
        lambda c: "v2" + c[2:],
        lambda c: c.replace(".", "", 1),
        lambda c: "not a ciphertext",
    ],
    ids=["flipped-byte", "truncated", "empty-body", "other-version", "no-separator", "garbage"],
)
def test_tampered_ciphertext_raises_decryption_error(
    key: str, tamper: Callable[[str], str]
) -> None:
    keys = ring(key)
    ciphertext = keys.encrypt("s3cret", CONTEXT)

    with pytest.raises(DecryptionError):
        keys.decrypt(tamper(ciphertext), CONTEXT)


def test_rotated_ring_decrypts_old_ciphertexts_and_marks_them_stale(key: str) -> None:
    old_ciphertext = ring(key).encrypt("old-secret", CONTEXT)
    rotated = ring(generate_key(), key)
    new_ciphertext = rotated.encrypt("new-secret", CONTEXT)

    assert rotated.decrypt(old_ciphertext, CONTEXT) == "old-secret"
    assert rotated.decrypt(new_ciphertext, CONTEXT) == "new-secret"
    assert not rotated.is_current(old_ciphertext)
    assert rotated.is_current(new_ciphertext)


def test_unknown_key_is_named_by_id_but_never_revealed(key: str) -> None:
    ciphertext = ring(key).encrypt("s3cret", CONTEXT)
    key_id = ciphertext.split(".")[1]

    with pytest.raises(DecryptionError) as caught:
        ring(generate_key()).decrypt(ciphertext, CONTEXT)
    assert key_id in caught.value.detail
    assert key not in caught.value.detail
    assert key.rstrip("=") not in caught.value.detail


@pytest.mark.parametrize(
    "text",
    [
        base64.urlsafe_b64encode(b"k" * 16).decode(),
        base64.urlsafe_b64encode(b"k" * 31).decode(),
        base64.urlsafe_b64encode(b"k" * 33).decode(),
        "",
        "not-a-key",
        "A",
    ],
)
def test_key_that_is_not_32_bytes_of_base64_is_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="32 random bytes"):
        decode_key(text)


def test_generated_key_decodes_to_32_bytes(key: str) -> None:
    assert len(decode_key(key)) == 32
    assert len(decode_key(key.rstrip("="))) == 32


def test_production_without_keys_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_key_ring(
            [], variable=VARIABLE, data_dir=tmp_path, app_name="api-studio", production=True
        )
    assert caught.value.detail.startswith(f"{VARIABLE}: ")
    assert list(tmp_path.iterdir()) == []


def test_development_without_keys_creates_a_private_key_file_and_reuses_it(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"

    first = load_key_ring(
        [], variable=VARIABLE, data_dir=data_dir, app_name="api-studio", production=False
    )
    (key_file,) = data_dir.iterdir()
    second = load_key_ring(
        [], variable=VARIABLE, data_dir=data_dir, app_name="api-studio", production=False
    )

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(decode_key(key_file.read_text())) == 32
    assert second.decrypt(first.encrypt("s3cret", CONTEXT), CONTEXT) == "s3cret"


def test_configured_keys_make_the_ring(key: str, tmp_path: Path) -> None:
    keys = load_key_ring(
        [key], variable=VARIABLE, data_dir=tmp_path, app_name="api-studio", production=True
    )

    assert ring(key).decrypt(keys.encrypt("s3cret", CONTEXT), CONTEXT) == "s3cret"


def test_invalid_configured_key_names_the_variable_without_echoing_it(tmp_path: Path) -> None:
    bad_key = base64.urlsafe_b64encode(b"too-short-secret").decode()

    with pytest.raises(ConfigError) as caught:
        load_key_ring(
            [generate_key(), bad_key],
            variable=VARIABLE,
            data_dir=tmp_path,
            app_name="api-studio",
            production=True,
        )
    assert caught.value.detail.startswith(f"{VARIABLE}: ")
    assert bad_key.rstrip("=") not in caught.value.detail
    assert "too-short-secret" not in caught.value.detail
