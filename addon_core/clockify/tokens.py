"""Verification of every token Clockify signs: lifecycle, webhook, installation and user.

Rules (PLATFORM.md, "Tokens"): RS256 only, signed by one of the configured
Clockify keys, `iss=clockify`, `type=addon`, `sub` equal to the add-on key,
a `workspaceId` claim, `exp` honoured with a bounded leeway and required for
user tokens. Webhook tokens repeat on every delivery, so verified tokens are
cached (bounded, keyed by a hash of the token, expiry checked on every hit).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from addon_core.clockify.shipped_data import PUBLIC_KEY_FILE, SHIPPED_DIR
from addon_core.errors import ConfigError, ForbiddenError, UnauthorizedError

DEFAULT_PUBLIC_KEY_FILE = SHIPPED_DIR / PUBLIC_KEY_FILE
_PEM_BLOCK_END = "-----END PUBLIC KEY-----"


class TokenKind(StrEnum):
    LIFECYCLE = "lifecycle"
    WEBHOOK = "webhook"
    INSTALLATION = "installation"
    USER = "user"


class TokenError(UnauthorizedError):
    """A token is missing or not valid; `reason` is a bounded label for metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail, reason=reason)


class ClaimMismatchError(ForbiddenError):
    """A valid token that belongs to another workspace, installation or webhook."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail, reason=reason)


@dataclass(frozen=True, slots=True)
class Claims:
    """The verified claims of one token."""

    raw: Mapping[str, Any]
    workspace_id: str
    addon_id: str | None
    expires_at: float | None

    @property
    def user_id(self) -> str | None:
        value = self.raw.get("user")
        return value if isinstance(value, str) else None

    @property
    def workspace_role(self) -> str | None:
        value = self.raw.get("workspaceRole")
        return value if isinstance(value, str) else None

    def url_claims(self) -> dict[str, str]:
        """The base-URL claims (`backendUrl`, `reportsUrl`, ...) this token carries."""
        return {k: v for k, v in self.raw.items() if k.endswith("Url") and isinstance(v, str) and v}


#: Claims only user tokens carry (marketplace docs, "Claims"). A user token travels in
#: iframe URLs, so it must never pass for a lifecycle, webhook or installation token.
_USER_ONLY_CLAIMS = ("workspaceRole", "language", "theme")


def _check_kind(claims: Claims, kind: TokenKind) -> None:
    """Refuse a valid Clockify token presented as a kind it is not."""
    is_user_token = any(name in claims.raw for name in _USER_ONLY_CLAIMS)
    if kind is TokenKind.USER:
        if claims.expires_at is None:
            raise TokenError("claims", "a user token must carry an expiry (exp)")
        if claims.workspace_role is None:
            raise TokenError("kind", "a user token must carry the user's workspaceRole")
    elif is_user_token:
        raise TokenError("kind", f"a user token cannot be used as the {kind} token")
    elif kind is TokenKind.INSTALLATION and "backendUrl" not in claims.raw:
        raise TokenError("kind", "an installation token carries the backendUrl claim")
    elif kind is TokenKind.LIFECYCLE and claims.url_claims():
        # Only installation (and user) tokens carry the API's base URLs ("Claims"); one
        # presented as the lifecycle token is the installation's own secret, replayed.
        raise TokenError("kind", "an installation token cannot be used as the lifecycle token")


def load_public_keys(path: Path | None, *, variable: str) -> list[RSAPublicKey]:
    """Read one or more PEM RSA public keys; raise `ConfigError` naming `variable` if unusable."""
    source = path or DEFAULT_PUBLIC_KEY_FILE
    try:
        text = source.read_text()
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {source} ({exc.strerror})") from None
    keys: list[RSAPublicKey] = []
    for block in text.split(_PEM_BLOCK_END):
        if "-----BEGIN PUBLIC KEY-----" not in block:
            continue
        try:
            key = load_pem_public_key(f"{block.strip()}\n{_PEM_BLOCK_END}\n".encode())
        except ValueError:
            raise ConfigError(f"{variable}: {source} holds a PEM block that is not a key") from None
        if not isinstance(key, RSAPublicKey):
            raise ConfigError(f"{variable}: {source} holds a key that is not RSA")
        keys.append(key)
    if not keys:
        raise ConfigError(f"{variable}: {source} holds no '-----BEGIN PUBLIC KEY-----' block")
    return keys


class TokenVerifier:
    """Verify Clockify tokens for one add-on key."""

    def __init__(
        self,
        public_keys: list[RSAPublicKey],
        addon_key: str,
        *,
        leeway_seconds: int = 30,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 <= leeway_seconds <= 60:
            raise ValueError("leeway_seconds must be between 0 and 60")
        self._keys = public_keys
        self._addon_key = addon_key
        self._leeway = leeway_seconds
        self._clock = clock
        self._cache: OrderedDict[bytes, Claims] = OrderedDict()
        self._cache_size = cache_size

    def verify(self, token: str | None, kind: TokenKind) -> Claims:
        """Return the claims of a valid token of `kind`, or raise `TokenError`."""
        if not token:
            raise TokenError("missing", f"the {kind} token is missing")
        digest = hashlib.sha256(token.encode()).digest()
        claims = self._cache.get(digest)
        if claims is None:
            claims = self._verify_signed(token)
            if self._cache_size:
                self._cache[digest] = claims
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        if claims.expires_at is not None and self._clock() > claims.expires_at + self._leeway:
            self._cache.pop(digest, None)
            raise TokenError("expired", f"the {kind} token has expired")
        _check_kind(claims, kind)
        return claims

    def _verify_signed(self, token: str) -> Claims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise TokenError("malformed", "the token is not a well-formed JWT") from None
        if header.get("alg") != "RS256":
            raise TokenError("algorithm", "the token must be signed with RS256")
        payload = self._decode_with_any_key(token)
        if payload.get("type") != "addon":
            raise TokenError("claims", "the token's type claim must be 'addon'")
        if payload.get("sub") != self._addon_key:
            raise TokenError("subject", "the token was issued for another add-on (sub)")
        workspace_id = payload.get("workspaceId")
        if not isinstance(workspace_id, str) or not workspace_id:
            raise TokenError("claims", "the token carries no workspaceId claim")
        addon_id = payload.get("addonId")
        exp, nbf = payload.get("exp"), payload.get("nbf")
        if exp is not None and not isinstance(exp, int | float):
            raise TokenError("malformed", "the token's exp claim is not a number")
        if isinstance(nbf, int | float) and self._clock() + self._leeway < nbf:
            raise TokenError("immature", "the token is not valid yet (nbf)")
        return Claims(
            raw=payload,
            workspace_id=workspace_id,
            addon_id=addon_id if isinstance(addon_id, str) and addon_id else None,
            expires_at=float(exp) if isinstance(exp, int | float) else None,
        )

    def _decode_with_any_key(self, token: str) -> dict[str, Any]:
        for key in self._keys:
            try:
                payload: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=["RS256"],
                    issuer="clockify",
                    leeway=self._leeway,
                    # Time claims are checked against the injected clock, below.
                    options={
                        "require": ["iss", "sub"],
                        "verify_aud": False,
                        "verify_exp": False,
                        "verify_nbf": False,
                        "verify_iat": False,
                    },
                )
            except jwt.InvalidSignatureError:
                continue
            except (jwt.InvalidIssuerError, jwt.MissingRequiredClaimError) as exc:
                raise TokenError("claims", f"the token is not Clockify's: {exc}") from None
            except jwt.InvalidTokenError:
                raise TokenError("malformed", "the token is not a valid JWT") from None
            return payload
        raise TokenError("signature", "the token's signature does not verify with Clockify's key")


class TokenSigner:
    """Mint Clockify-shaped tokens with a private key: the local sandbox's and the tests' side
    of `TokenVerifier`, so both run the production verification path."""

    def __init__(self, private_key: Any, addon_key: str) -> None:
        self._key = private_key
        self._addon_key = addon_key

    def sign(self, claims: Mapping[str, Any], *, headers: Mapping[str, Any] | None = None) -> str:
        """Sign arbitrary claims with RS256 (no defaults added)."""
        return jwt.encode(dict(claims), self._key, algorithm="RS256", headers=dict(headers or {}))

    def token(
        self,
        workspace_id: str,
        addon_id: str,
        *,
        expires_in: float | None = None,
        **extra: Any,
    ) -> str:
        """Sign a token with Clockify's standard claims plus `extra`."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": "clockify",
            "type": "addon",
            "sub": self._addon_key,
            "workspaceId": workspace_id,
            "addonId": addon_id,
            "iat": now,
            **extra,
        }
        if expires_in is not None:
            claims["exp"] = now + expires_in
        return self.sign(claims)
