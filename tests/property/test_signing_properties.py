"""Properties of Standard Webhooks signing, the dedupe key and list cursors."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from addon_core.errors import BadRequestError
from addon_core.intake.routes import dedupe_key
from addon_core.intake.standard_webhooks import (
    SIGNATURE_HEADER,
    WebhookSignatureError,
    generate_secret,
    signature_headers,
    verify,
)
from addon_core.web.caller import decode_cursor, decode_int_cursor, encode_cursor

NOW = 1_700_000_000
secrets = st.builds(lambda _: generate_secret(), st.integers())
msg_ids = st.text(
    alphabet=st.characters(codec="ascii", exclude_characters=".", exclude_categories=["Cc", "Zs"]),
    min_size=1,
    max_size=40,
)
bodies = st.binary(max_size=200)
skews = st.integers(min_value=-300, max_value=300)


@given(secret=secrets, msg_id=msg_ids, body=bodies, skew=skews)
def test_a_signed_delivery_verifies_within_the_tolerance(
    secret: str, msg_id: str, body: bytes, skew: int
) -> None:
    headers = signature_headers(secret, body, msg_id=msg_id, timestamp=NOW + skew)
    assert verify(headers, body, [secret], now=NOW) == msg_id


@given(secret=secrets, other=secrets, msg_id=msg_ids, body=bodies, change=bodies)
def test_another_secret_or_body_fails_and_a_rotation_passes(
    secret: str, other: str, msg_id: str, body: bytes, change: bytes
) -> None:
    assume(secret != other and change != body)
    headers = signature_headers(secret, body, msg_id=msg_id, timestamp=NOW)
    with pytest.raises(WebhookSignatureError):
        verify(headers, body, [other], now=NOW)
    with pytest.raises(WebhookSignatureError):
        verify(headers, change, [secret], now=NOW)
    rotated = signature_headers(other, body, msg_id=msg_id, timestamp=NOW, also_sign_with=[secret])
    assert verify(rotated, body, [secret], now=NOW) == msg_id


@given(secret=secrets, body=bodies, skew=st.integers(min_value=301, max_value=10**6))
def test_a_timestamp_past_the_tolerance_is_stale(secret: str, body: bytes, skew: int) -> None:
    for timestamp in (NOW - skew, NOW + skew):
        headers = signature_headers(secret, body, msg_id="msg_1", timestamp=timestamp)
        with pytest.raises(WebhookSignatureError) as raised:
            verify(headers, body, [secret], now=NOW)
        assert raised.value.reason == "stale"


@given(
    secret=secrets,
    body=bodies,
    headers=st.dictionaries(
        st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature", "svix-id"]),
        st.text(max_size=60),
    ),
)
def test_any_forged_headers_are_refused_with_a_reason(
    secret: str, body: bytes, headers: dict[str, str]
) -> None:
    with pytest.raises(WebhookSignatureError) as raised:
        verify(headers, body, [secret], now=NOW)
    assert raised.value.reason in {"missing_headers", "malformed", "invalid_signature", "stale"}
    assert secret not in raised.value.detail


@given(secret=secrets, body=bodies, noise=st.text(max_size=30))
def test_a_tampered_signature_never_passes(secret: str, body: bytes, noise: str) -> None:
    headers = signature_headers(secret, body, msg_id="msg_1", timestamp=NOW)
    signature = headers[SIGNATURE_HEADER]
    assume(noise.strip() and noise not in signature)
    tampered = {**headers, SIGNATURE_HEADER: signature[:-4] + noise}
    with pytest.raises(WebhookSignatureError):
        verify(tampered, body, [secret], now=NOW)


# --- the dedupe key ------------------------------------------------------------------------

deliveries = st.tuples(st.text(max_size=12), st.text(max_size=12), st.binary(max_size=40))


@given(first=deliveries, second=deliveries)
def test_the_dedupe_key_is_equal_exactly_for_identical_deliveries(
    first: tuple[str, str, bytes], second: tuple[str, str, bytes]
) -> None:
    assume("\n" not in first[0] + first[1] + second[0] + second[1])
    assert dedupe_key(*first) == dedupe_key(*first)
    assert (dedupe_key(*first) == dedupe_key(*second)) is (first == second)
    assert len(dedupe_key(*first)) == 64


# --- cursors -------------------------------------------------------------------------------


@given(value=st.integers(min_value=0, max_value=2**63 - 1) | st.text(min_size=1, max_size=40))
def test_a_cursor_reads_back_as_its_value(value: int | str) -> None:
    cursor = encode_cursor(value)
    assert cursor.isascii()
    assert "=" not in cursor
    assert decode_cursor(cursor) == str(value)
    if isinstance(value, int):
        assert decode_int_cursor(cursor) == value


@given(cursor=st.text(max_size=60))
def test_any_cursor_text_is_read_or_refused_with_a_400(cursor: str) -> None:
    try:
        value = decode_int_cursor(cursor)
    except BadRequestError as exc:
        assert "cursor" in exc.detail  # noqa: PT017
        return
    assert value is None or value >= 0


@given(text=st.text(alphabet="0123456789²³¹٣", min_size=1, max_size=5000))
def test_an_id_cursor_holding_any_digits_is_read_or_refused_with_a_400(text: str) -> None:
    try:
        value = decode_int_cursor(encode_cursor(text))
    except BadRequestError as exc:
        assert not (text.isascii() and len(text) <= 19)
        assert "cursor" in exc.detail  # noqa: PT017
        return
    assert value == int(text)
