"""Token verification: every forged or stale variant is refused with its reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from addon_core.clockify.tokens import (
    DEFAULT_PUBLIC_KEY_FILE,
    TokenError,
    TokenKind,
    TokenSigner,
    TokenVerifier,
    load_public_keys,
)
from addon_core.errors import ConfigError

ADDON_KEY = "api-studio"
WORKSPACE = "ws-1"
VARIABLE = "API_STUDIO_CLOCKIFY_PUBLIC_KEY_FILE"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def signer(key: rsa.RSAPrivateKey) -> TokenSigner:
    return TokenSigner(key, ADDON_KEY)


@pytest.fixture
def verifier(key: rsa.RSAPrivateKey) -> TokenVerifier:
    return TokenVerifier([key.public_key()], ADDON_KEY)


def standard_claims(**changes: Any) -> dict[str, Any]:
    claims = {
        "iss": "clockify",
        "type": "addon",
        "sub": ADDON_KEY,
        "workspaceId": WORKSPACE,
        "addonId": "addon-1",
        "iat": int(time.time()),
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(
    header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]
) -> str:
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64url(sign(signing_input.encode()))}"


def pem(public_key: Any) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_valid_webhook_token_yields_its_claims(
    signer: TokenSigner, verifier: TokenVerifier
) -> None:
    claims = verifier.verify(signer.token(WORKSPACE, "addon-1"), TokenKind.WEBHOOK)

    assert (claims.workspace_id, claims.addon_id, claims.expires_at) == (WORKSPACE, "addon-1", None)


def test_unsigned_token_is_rejected(verifier: TokenVerifier) -> None:
    token = hand_made({"alg": "none", "typ": "JWT"}, standard_claims(), lambda _: b"")

    with pytest.raises(TokenError) as caught:
        verifier.verify(token, TokenKind.WEBHOOK)
    assert caught.value.reason == "algorithm"


def test_hs256_token_keyed_with_the_public_key_is_rejected(
    key: rsa.RSAPrivateKey, verifier: TokenVerifier
) -> None:
    secret = pem(key.public_key())
    token = hand_made(
        {"alg": "HS256", "typ": "JWT"},
        standard_claims(),
        lambda data: hmac.new(secret, data, hashlib.sha256).digest(),
    )

    with pytest.raises(TokenError) as caught:
        verifier.verify(token, TokenKind.WEBHOOK)
    assert caught.value.reason == "algorithm"


def test_token_signed_by_another_key_is_rejected(
    other_key: rsa.RSAPrivateKey, verifier: TokenVerifier
) -> None:
    token = TokenSigner(other_key, ADDON_KEY).token(WORKSPACE, "addon-1")

    with pytest.raises(TokenError) as caught:
        verifier.verify(token, TokenKind.WEBHOOK)
    assert caught.value.reason == "signature"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        pytest.param(standard_claims(exp=int(time.time()) - 3600), "expired", id="expired"),
        pytest.param(standard_claims(iss="not-clockify"), "claims", id="wrong-iss"),
        pytest.param(standard_claims(iss=None), "claims", id="no-iss"),
        pytest.param(standard_claims(type="user"), "claims", id="wrong-type"),
        pytest.param(standard_claims(sub="another-addon"), "subject", id="wrong-sub"),
        pytest.param(standard_claims(workspaceId=None), "claims", id="no-workspace"),
        pytest.param(standard_claims(workspaceId=""), "claims", id="empty-workspace"),
    ],
)
def test_token_with_bad_claims_is_rejected(
    signer: TokenSigner, verifier: TokenVerifier, claims: dict[str, Any], reason: str
) -> None:
    with pytest.raises(TokenError) as caught:
        verifier.verify(signer.sign(claims), TokenKind.WEBHOOK)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("not-a-jwt", "malformed"),
        ("a.b.c", "malformed"),
        ("", "missing"),
        (None, "missing"),
    ],
)
def test_malformed_or_missing_token_is_rejected(
    verifier: TokenVerifier, token: str | None, reason: str
) -> None:
    with pytest.raises(TokenError) as caught:
        verifier.verify(token, TokenKind.LIFECYCLE)
    assert caught.value.reason == reason


def test_user_token_without_expiry_is_rejected(
    signer: TokenSigner, verifier: TokenVerifier
) -> None:
    token = signer.token(WORKSPACE, "addon-1", user="user-1", workspaceRole="OWNER")

    with pytest.raises(TokenError) as caught:
        verifier.verify(token, TokenKind.USER)
    assert caught.value.reason == "claims"


def test_user_token_with_expiry_exposes_user_and_role(
    signer: TokenSigner, verifier: TokenVerifier
) -> None:
    token = signer.token(
        WORKSPACE, "addon-1", expires_in=1800, user="user-1", workspaceRole="ADMIN"
    )

    claims = verifier.verify(token, TokenKind.USER)

    assert (claims.user_id, claims.workspace_role) == ("user-1", "ADMIN")
    assert claims.expires_at is not None
    assert claims.expires_at > time.time()


USER_CLAIMS = {"user": "user-1", "workspaceRole": "USER", "language": "EN", "theme": "DEFAULT"}


@pytest.mark.parametrize("kind", [TokenKind.LIFECYCLE, TokenKind.WEBHOOK, TokenKind.INSTALLATION])
def test_user_token_never_passes_for_another_kind(
    signer: TokenSigner, verifier: TokenVerifier, kind: TokenKind
) -> None:
    token = signer.token(
        WORKSPACE, "addon-1", expires_in=1800, backendUrl="https://api.clockify.me/api",
        **USER_CLAIMS,
    )  # fmt: skip
    assert verifier.verify(token, TokenKind.USER).workspace_role == "USER"

    with pytest.raises(TokenError) as caught:
        verifier.verify(token, kind)
    assert caught.value.reason == "kind"


def test_installation_token_must_carry_its_backend_url(
    signer: TokenSigner, verifier: TokenVerifier
) -> None:
    without = signer.token(WORKSPACE, "addon-1", user="owner-1")
    with_url = signer.token(
        WORKSPACE, "addon-1", user="owner-1", backendUrl="https://api.clockify.me/api"
    )

    with pytest.raises(TokenError) as caught:
        verifier.verify(without, TokenKind.INSTALLATION)
    assert caught.value.reason == "kind"
    assert verifier.verify(with_url, TokenKind.INSTALLATION).url_claims() == {
        "backendUrl": "https://api.clockify.me/api"
    }


def test_user_token_without_a_role_is_rejected(
    signer: TokenSigner, verifier: TokenVerifier
) -> None:
    token = signer.token(WORKSPACE, "addon-1", expires_in=1800, user="user-1")

    with pytest.raises(TokenError) as caught:
        verifier.verify(token, TokenKind.USER)
    assert caught.value.reason == "kind"


@pytest.mark.parametrize(("leeway", "accepted"), [(30, True), (0, False)])
def test_token_expired_ten_seconds_ago_is_judged_by_the_leeway(
    signer: TokenSigner, key: rsa.RSAPrivateKey, leeway: int, accepted: bool
) -> None:
    now = time.time()
    token = signer.sign(standard_claims(iat=int(now) - 60, exp=int(now) - 10))
    verifier = TokenVerifier(
        [key.public_key()], ADDON_KEY, leeway_seconds=leeway, clock=lambda: now
    )

    if accepted:
        assert verifier.verify(token, TokenKind.WEBHOOK).workspace_id == WORKSPACE
    else:
        with pytest.raises(TokenError) as caught:
            verifier.verify(token, TokenKind.WEBHOOK)
        assert caught.value.reason == "expired"


def test_injected_clock_not_wall_clock_decides_expiry(
    signer: TokenSigner, key: rsa.RSAPrivateKey
) -> None:
    # A clock set in the past: the token is still valid at that instant.
    then = 1_600_000_000.0
    token = signer.sign(standard_claims(iat=int(then) - 60, exp=int(then) + 600))
    verifier = TokenVerifier([key.public_key()], ADDON_KEY, leeway_seconds=0, clock=lambda: then)

    assert verifier.verify(token, TokenKind.WEBHOOK).expires_at == then + 600


def test_repeated_verification_returns_the_cached_claims(
    signer: TokenSigner, key: rsa.RSAPrivateKey
) -> None:
    token = signer.token(WORKSPACE, "addon-1")
    cached = TokenVerifier([key.public_key()], ADDON_KEY)
    uncached = TokenVerifier([key.public_key()], ADDON_KEY, cache_size=0)

    first = cached.verify(token, TokenKind.WEBHOOK)
    assert cached.verify(token, TokenKind.WEBHOOK) is first
    assert uncached.verify(token, TokenKind.WEBHOOK) == first
    assert uncached.verify(token, TokenKind.WEBHOOK) is not uncached.verify(
        token, TokenKind.WEBHOOK
    )


def test_cached_token_is_rejected_once_the_clock_passes_its_expiry(
    signer: TokenSigner, key: rsa.RSAPrivateKey
) -> None:
    now = [time.time()]
    token = signer.token(WORKSPACE, "addon-1", expires_in=600)
    verifier = TokenVerifier([key.public_key()], ADDON_KEY, leeway_seconds=30, clock=lambda: now[0])
    expires_at = verifier.verify(token, TokenKind.WEBHOOK).expires_at
    assert expires_at is not None

    now[0] = expires_at + 29
    assert verifier.verify(token, TokenKind.WEBHOOK).expires_at == expires_at
    now[0] = expires_at + 31
    with pytest.raises(TokenError) as caught:
        verifier.verify(token, TokenKind.WEBHOOK)
    assert caught.value.reason == "expired"


def test_token_signed_by_the_second_configured_key_is_accepted(
    key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey
) -> None:
    verifier = TokenVerifier([key.public_key(), other_key.public_key()], ADDON_KEY)
    token = TokenSigner(other_key, ADDON_KEY).token(WORKSPACE, "addon-1")

    assert verifier.verify(token, TokenKind.WEBHOOK).workspace_id == WORKSPACE


@pytest.mark.parametrize("leeway", [-1, 61])
def test_unbounded_leeway_is_refused(key: rsa.RSAPrivateKey, leeway: int) -> None:
    with pytest.raises(ValueError, match="leeway"):
        TokenVerifier([key.public_key()], ADDON_KEY, leeway_seconds=leeway)


def test_key_file_with_two_keys_yields_both(
    key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    path = tmp_path / "keys.pem"
    path.write_bytes(pem(key.public_key()) + pem(other_key.public_key()))

    keys = load_public_keys(path, variable=VARIABLE)

    assert [k.public_numbers() for k in keys] == [
        key.public_key().public_numbers(),
        other_key.public_key().public_numbers(),
    ]


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(None, id="missing-file"),
        pytest.param(b"no key in here\n", id="no-key"),
        pytest.param(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", id="bad-pem"),
        pytest.param(pem(ec.generate_private_key(ec.SECP256R1()).public_key()), id="ec-key"),
    ],
)
def test_unusable_key_file_raises_config_error_naming_the_variable(
    tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "keys.pem"
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(ConfigError) as caught:
        load_public_keys(path, variable=VARIABLE)
    assert caught.value.detail.startswith(f"{VARIABLE}: ")


def test_packaged_default_key_is_clockifys_published_key(reference_dir: Path) -> None:
    (published,) = load_public_keys(reference_dir / "clockify-public-key.pem", variable=VARIABLE)
    (packaged,) = load_public_keys(DEFAULT_PUBLIC_KEY_FILE, variable=VARIABLE)
    (default,) = load_public_keys(None, variable=VARIABLE)

    assert packaged.public_numbers() == published.public_numbers()
    assert default.public_numbers() == published.public_numbers()


def test_installation_token_never_passes_for_the_lifecycle_token(
    signer: TokenSigner, verifier: TokenVerifier
) -> None:
    token = signer.token(
        WORKSPACE, "addon-1", user="owner-1", backendUrl="https://api.clockify.me/api"
    )
    assert verifier.verify(token, TokenKind.INSTALLATION).workspace_id == WORKSPACE

    with pytest.raises(TokenError) as caught:
        verifier.verify(token, TokenKind.LIFECYCLE)
    assert caught.value.reason == "kind"
    assert "installation token" in caught.value.detail
