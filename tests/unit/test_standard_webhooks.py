"""Standard Webhooks signing and verification."""

from __future__ import annotations

import base64

import pytest

from addon_core.errors import UnauthorizedError
from addon_core.intake.standard_webhooks import (
    WebhookSignatureError,
    generate_secret,
    sign,
    signature_headers,
    verify,
)

# The reference libraries' test vector (standard-webhooks, libraries/python/tests).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

NOW = 1_700_000_000
BODY = b'{"type":"invoice.paid","data":{"id":"inv_1"}}'


@pytest.fixture
def secret() -> str:
    return generate_secret()


def reason_of(excinfo: pytest.ExceptionInfo[WebhookSignatureError]) -> str:
    return excinfo.value.reason


def test_sign_matches_the_spec_test_vector() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_spec_test_vector_verifies() -> None:
    headers = {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }
    assert verify(headers, SPEC_BODY, [SPEC_SECRET], now=SPEC_TIMESTAMP) == SPEC_ID


def test_generated_secret_is_whsec_and_32_random_bytes() -> None:
    first, second = generate_secret(), generate_secret()
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert first != second


def test_signed_headers_roundtrip(secret: str) -> None:
    headers = signature_headers(secret, BODY, msg_id="msg_1", timestamp=NOW)
    assert headers == {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(NOW),
        "webhook-signature": sign(secret, "msg_1", NOW, BODY),
    }
    assert verify(headers, BODY, [secret], now=NOW) == "msg_1"


def test_default_id_and_timestamp_are_fresh(secret: str) -> None:
    first = signature_headers(secret, BODY)
    second = signature_headers(secret, BODY)
    assert first["webhook-id"] != second["webhook-id"]
    assert verify(first, BODY, [secret]) == first["webhook-id"]


def test_header_names_are_case_insensitive(secret: str) -> None:
    headers = {k.title(): v for k, v in signature_headers(secret, BODY, timestamp=NOW).items()}
    assert verify(headers, BODY, [secret], now=NOW)


def test_svix_header_aliases_are_accepted(secret: str) -> None:
    headers = signature_headers(secret, BODY, msg_id="msg_2", timestamp=NOW)
    svix = {k.replace("webhook-", "svix-"): v for k, v in headers.items()}
    assert verify(svix, BODY, [secret], now=NOW) == "msg_2"


def test_tampered_body_is_rejected(secret: str) -> None:
    headers = signature_headers(secret, BODY, timestamp=NOW)
    with pytest.raises(WebhookSignatureError) as excinfo:
        verify(headers, BODY + b" ", [secret], now=NOW)
    assert reason_of(excinfo) == "invalid_signature"
    assert isinstance(excinfo.value, UnauthorizedError)
    assert excinfo.value.status_code == 401


def test_tampered_id_is_rejected(secret: str) -> None:
    headers = signature_headers(secret, BODY, msg_id="msg_a", timestamp=NOW)
    headers["webhook-id"] = "msg_b"
    with pytest.raises(WebhookSignatureError) as excinfo:
        verify(headers, BODY, [secret], now=NOW)
    assert reason_of(excinfo) == "invalid_signature"


def test_tampered_timestamp_is_rejected(secret: str) -> None:
    headers = signature_headers(secret, BODY, timestamp=NOW)
    headers["webhook-timestamp"] = str(NOW + 1)
    with pytest.raises(WebhookSignatureError) as excinfo:
        verify(headers, BODY, [secret], now=NOW)
    assert reason_of(excinfo) == "invalid_signature"


def test_wrong_secret_is_rejected(secret: str) -> None:
    headers = signature_headers(generate_secret(), BODY, timestamp=NOW)
    with pytest.raises(WebhookSignatureError) as excinfo:
        verify(headers, BODY, [secret], now=NOW)
    assert reason_of(excinfo) == "invalid_signature"


@pytest.mark.parametrize("offset", [-301, 301, -3600, 10**6])
def test_timestamp_outside_tolerance_is_stale(secret: str, offset: int) -> None:
    headers = signature_headers(secret, BODY, timestamp=NOW + offset)
    with pytest.raises(WebhookSignatureError) as excinfo:
        verify(headers, BODY, [secret], tolerance=300, now=NOW)
    assert reason_of(excinfo) == "stale"
    assert "300s" in excinfo.value.detail


@pytest.mark.parametrize("offset", [-300, -299, 0, 299, 300])
def test_timestamp_just_inside_tolerance_passes(secret: str, offset: int) -> None:
    headers = signature_headers(secret, BODY, msg_id="msg_in", timestamp=NOW + offset)
    assert verify(headers, BODY, [secret], tolerance=300, now=NOW) == "msg_in"


def test_any_valid_v1_signature_among_several_passes(secret: str) -> None:
    headers = signature_headers(secret, BODY, timestamp=NOW)
    valid = headers["webhook-signature"]
    junk = "v1," + base64.b64encode(b"\x00" * 32).decode()
    headers["webhook-signature"] = f"{junk} v1a,{valid[3:]} v2,abc {valid} {junk}"
    assert verify(headers, BODY, [secret], now=NOW)


def test_other_versions_alone_do_not_pass(secret: str) -> None:
    headers = signature_headers(secret, BODY, timestamp=NOW)
    headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v1a,")
    with pytest.raises(WebhookSignatureError) as excinfo:
        verify(headers, BODY, [secret], now=NOW)
    assert reason_of(excinfo) == "malformed"


def test_rotation_old_and_new_secrets_both_verify() -> None:
    old, new = generate_secret(), generate_secret()
    from_old = signature_headers(old, BODY, timestamp=NOW)
    from_new = signature_headers(new, BODY, timestamp=NOW)
    assert verify(from_old, BODY, [new, old], now=NOW)
    assert verify(from_new, BODY, [new, old], now=NOW)
    with pytest.raises(WebhookSignatureError):
        verify(from_old, BODY, [new], now=NOW)


def test_sender_may_sign_with_several_secrets() -> None:
    old, new = generate_secret(), generate_secret()
    headers = signature_headers(new, BODY, timestamp=NOW, also_sign_with=[old])
    assert len(headers["webhook-signature"].split()) == 2
    assert verify(headers, BODY, [old], now=NOW)
    assert verify(headers, BODY, [new], now=NOW)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_rejected(secret: str, missing: str) -> None:
    headers = signature_headers(secret, BODY, timestamp=NOW)
    del headers[missing]
    with pytest.raises(WebhookSignatureError) as excinfo:
        verify(headers, BODY, [secret], now=NOW)
    assert reason_of(excinfo) == "missing_headers"


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("webhook-timestamp", "hello"),
        ("webhook-timestamp", "1700000000.5"),
        ("webhook-timestamp", "-1700000000"),
        ("webhook-timestamp", "\uff11\uff17\uff10\uff10"),  # full-width digits
        ("webhook-timestamp", "9" * 40),
        ("webhook-signature", "v1,not base64!"),
        ("webhook-signature", "v1,"),
        ("webhook-signature", "garbage"),
        ("webhook-signature", "v1,AAAA"),
        ("webhook-id", "msg.with.dots"),
        ("webhook-id", "m" * 300),
    ],
)
def test_malformed_headers_are_rejected(secret: str, header: str, value: str) -> None:
    headers = signature_headers(secret, BODY, timestamp=NOW)
    headers[header] = value
    with pytest.raises(WebhookSignatureError) as excinfo:
        verify(headers, BODY, [secret], now=NOW)
    assert reason_of(excinfo) == "malformed"


def test_errors_never_echo_the_secret_or_the_expected_signature(secret: str) -> None:
    headers = signature_headers(secret, BODY, timestamp=NOW)
    expected = headers["webhook-signature"]
    for tampered_body, now in ((BODY + b"x", NOW), (BODY, NOW + 10_000)):
        with pytest.raises(WebhookSignatureError) as excinfo:
            verify(headers, tampered_body, [secret], now=now)
        text = f"{excinfo.value.detail} {excinfo.value!r} {excinfo.value.extra}"
        assert secret not in text
        assert secret.removeprefix("whsec_") not in text
        assert expected not in text
        assert expected[3:] not in text


def test_secret_without_prefix_is_the_same_key() -> None:
    bare = SPEC_SECRET.removeprefix("whsec_")
    assert sign(bare, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_invalid_secret_and_id_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="not a Standard Webhooks secret"):
        sign("whsec_!!!", "msg_1", NOW, BODY)
    with pytest.raises(ValueError, match="must not contain"):
        sign(generate_secret(), "msg.1", NOW, BODY)
    with pytest.raises(ValueError, match="at least one secret"):
        verify({}, BODY, [])
