"""Standard Webhooks signatures (https://www.standardwebhooks.com): sign beside verify.

Symmetric scheme only: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` keyed with the
base64 part of a `whsec_` secret, carried in `webhook-id`, `webhook-timestamp`, `webhook-signature`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as random
import time
from collections.abc import Mapping, Sequence

from addon_core.errors import UnauthorizedError

SECRET_PREFIX = "whsec_"  # noqa: S105 - a marker, not a secret
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
DEFAULT_TOLERANCE_SECONDS = 300

#: Svix, where the spec comes from, sends the same values under these names.
_ALIASES = {
    ID_HEADER: "svix-id",
    TIMESTAMP_HEADER: "svix-timestamp",
    SIGNATURE_HEADER: "svix-signature",
}
#: The spec asks for 24 to 64 random bytes; 32 matches the HMAC-SHA256 block of security.
_SECRET_BYTES = 32
_MAX_ID_LENGTH = 256
_MAX_SIGNATURES = 10


class WebhookSignatureError(UnauthorizedError):
    """A delivery without a valid Standard Webhooks signature.

    `reason` is one of `missing_headers`, `malformed`, `invalid_signature`, `stale`.
    """

    def __init__(self, detail: str, *, reason: str) -> None:
        super().__init__(detail, reason=reason)


def generate_secret() -> str:
    """Return a new signing secret: `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(random.token_bytes(_SECRET_BYTES)).decode("ascii")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the `v1,<base64>` signature of one delivery."""
    if "." in msg_id:
        # The spec: ids must not hold "." or "{id}.{timestamp}.{body}" becomes ambiguous.
        raise ValueError("a webhook id must not contain '.'")
    return "v1," + base64.b64encode(_digest(_secret_key(secret), msg_id, timestamp, body)).decode()


def signature_headers(
    secret: str,
    body: bytes,
    *,
    msg_id: str | None = None,
    timestamp: int | None = None,
    also_sign_with: Sequence[str] = (),
) -> dict[str, str]:
    """Return the three Standard Webhooks headers for a delivery of `body`.

    Args:
        also_sign_with: older secrets still inside a rotation grace period; the receiver
            accepts whichever signature matches the secret it knows.
    """
    msg_id = msg_id if msg_id is not None else f"msg_{random.token_hex(16)}"
    timestamp = timestamp if timestamp is not None else int(time.time())
    signatures = [sign(key, msg_id, timestamp, body) for key in (secret, *also_sign_with)]
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: " ".join(signatures),
    }


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> str:
    """Check a delivery's signature and timestamp; return its `webhook-id`.

    Any `v1` signature made with any of `secrets` passes (several secrets during a
    rotation); other versions (`v1a`, ...) are skipped. Raises `WebhookSignatureError`.
    The `svix-*` header names are accepted as aliases.
    """
    if not secrets:
        raise ValueError("verify needs at least one secret")
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id, raw_timestamp, raw_signatures = (_header(lowered, name) for name in _ALIASES)
    if not (msg_id and raw_timestamp and raw_signatures):
        raise WebhookSignatureError(
            f"missing Standard Webhooks headers: send {ID_HEADER}, {TIMESTAMP_HEADER} "
            f"and {SIGNATURE_HEADER}",
            reason="missing_headers",
        )
    if len(msg_id) > _MAX_ID_LENGTH or "." in msg_id:
        raise WebhookSignatureError(
            f"{ID_HEADER} must be at most {_MAX_ID_LENGTH} characters without '.'",
            reason="malformed",
        )
    timestamp = _parse_timestamp(raw_timestamp)
    candidates = _parse_signatures(raw_signatures)
    if not candidates:
        raise WebhookSignatureError(
            f"{SIGNATURE_HEADER} holds no v1,<base64 HMAC-SHA256> signature", reason="malformed"
        )
    if not _matches(candidates, secrets, msg_id, timestamp, body):
        raise WebhookSignatureError(
            f"no signature in {SIGNATURE_HEADER} matches this endpoint's secret; sign "
            f"'{{webhook-id}}.{{webhook-timestamp}}.{{raw body}}' with HMAC-SHA256",
            reason="invalid_signature",
        )
    # Checked after the signature, so only an authentic delivery learns how far off its clock is.
    skew = int((time.time() if now is None else now) - timestamp)
    if abs(skew) > tolerance:
        direction = "old" if skew > 0 else "far in the future"
        raise WebhookSignatureError(
            f"{TIMESTAMP_HEADER} is {abs(skew)}s {direction}; at most {tolerance}s is accepted "
            "(check the sender's clock, and sign each attempt afresh)",
            reason="stale",
        )
    return msg_id


def _header(headers: Mapping[str, str], name: str) -> str:
    return (headers.get(name) or headers.get(_ALIASES[name]) or "").strip()


def _parse_timestamp(raw: str) -> int:
    # The spec: integer Unix seconds. Bounded length keeps int() cheap.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 12):
        raise WebhookSignatureError(
            f"{TIMESTAMP_HEADER} must be integer Unix seconds", reason="malformed"
        )
    return int(raw)


def _parse_signatures(raw: str) -> list[bytes]:
    """Return the decoded `v1` signatures; other versions and undecodable entries are skipped."""
    found: list[bytes] = []
    for entry in raw.split()[:_MAX_SIGNATURES]:
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(decoded) == hashlib.sha256().digest_size:
            found.append(decoded)
    return found


def _matches(
    candidates: Sequence[bytes], secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> bool:
    # Every comparison runs, so timing does not tell which secret or signature matched.
    matched = False
    for secret in secrets:
        expected = _digest(_secret_key(secret), msg_id, timestamp, body)
        for candidate in candidates:
            matched |= hmac.compare_digest(expected, candidate)
    return matched


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def _secret_key(secret: str) -> bytes:
    """Decode a `whsec_` secret (the prefix is optional, as in the reference libraries)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not a Standard Webhooks secret: expected whsec_ and base64") from None
    if not key:
        raise ValueError("a Standard Webhooks secret must not be empty")
    return key
