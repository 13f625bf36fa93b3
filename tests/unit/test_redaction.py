"""Masking of tokens and secrets in free text, JSON-like values and headers."""

from __future__ import annotations

from typing import Any

import pytest

from addon_core.redaction import (
    MASK,
    MAX_DEPTH,
    TOO_DEEP,
    is_secret_name,
    redact,
    redact_headers,
    redact_text,
    redact_url,
    safe_headers,
)

JWT = (
    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhcGktc3R1ZGlvIiwid29ya3NwYWNlSWQiOiJ3cy0xIn0"
    ".c2lnbmF0dXJlLWJ5dGVzLWhlcmU"
)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"verifying {JWT} now", JWT),
        (f"token={JWT}", JWT),
        ("Authorization: Bearer abc.def-123", "abc.def-123"),
        ("authorization: basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ("X-Addon-Token: opaque-installation-token", "opaque-installation-token"),
        ("{'x-addon-lifecycle-token': 'opaque-lifecycle'}", "opaque-lifecycle"),
        ('{"authToken": "opaque-auth-token", "workspaceId": "ws-1"}', "opaque-auth-token"),
        ("GET /ui?auth_token=opaque-user-token&theme=DARK", "opaque-user-token"),
        ("postgresql+asyncpg://addons:hunter2@db:5432/addons", "hunter2"),
        ("postgresql+asyncpg://:hunter2@db/addons", "hunter2"),
        ("postgresql+asyncpg://addons:hunter/2@db:5432/addons", "hunter/2"),
    ],
)
def test_secret_in_text_is_masked(text: str, secret: str) -> None:
    redacted = redact_text(text)

    assert secret not in redacted
    assert MASK in redacted


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc", f"Authorization: Bearer {MASK}"),
        ("GET /ui?auth_token=abc&theme=DARK", f"GET /ui?auth_token={MASK}&theme=DARK"),
        ('{"authToken": "abc"}', f'{{"authToken": "{MASK}"}}'),
        (
            "postgresql+asyncpg://addons:pw@db/addons",
            f"postgresql+asyncpg://addons:{MASK}@db/addons",
        ),
    ],
)
def test_masking_keeps_the_surrounding_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Created time entry 5f1a for project Alpha (2 tags)",
        "GET https://api.clockify.me:443/api/v1/workspaces/ws-1/projects?page=2&page-size=50",
        "the token expired; ask the user to reopen the add-on",
        "retry after 3 s: status=429",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "send the user token as 'Authorization: Bearer <token>'",
        "Authorization: Bearer <auth_token>",
        "X-Addon-Token: <installation token>",
        "GET /ui?auth_token=<token>&theme=DARK",
        '{"authToken": "<token>"}',
    ],
)
def test_a_placeholder_in_a_hint_is_not_masked(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer <token>abc", "abc"),
        ("Authorization: Bearer abc<token>", "abc"),
        ("Authorization: Bearer <script>x</script>", "x</script>"),
        ('{"authToken": "<token>-and-more"}', "-and-more"),
    ],
)
def test_a_real_token_next_to_angle_brackets_is_still_masked(text: str, secret: str) -> None:
    assert secret not in redact_text(text)


def test_redact_masks_secret_keys_at_any_depth_and_keeps_shape() -> None:
    value = {
        "workspaceId": "ws-1",
        "authToken": "opaque",
        "webhooks": [
            {"path": "/webhooks/clockify/new-tag", "authToken": "opaque-2", "webhookType": "ADDON"},
            {"path": "/webhooks/clockify/new-task", "authToken": None},
        ],
        "headers": {"X-Addon-Token": "opaque-3", "Content-Type": "application/json"},
        "settings": {"clientSecret": 12345, "apiKey": ["a", "b"], "count": 3},
        "note": f"signed with {JWT}",
        "flags": (True, False),
    }

    assert redact(value) == {
        "workspaceId": "ws-1",
        "authToken": MASK,
        "webhooks": [
            {"path": "/webhooks/clockify/new-tag", "authToken": MASK, "webhookType": "ADDON"},
            {"path": "/webhooks/clockify/new-task", "authToken": None},
        ],
        "headers": {"X-Addon-Token": MASK, "Content-Type": "application/json"},
        "settings": {"clientSecret": MASK, "apiKey": MASK, "count": 3},
        "note": f"signed with {MASK}",
        "flags": [True, False],
    }
    assert value["authToken"] == "opaque"


def test_safe_headers_drops_credentials() -> None:
    headers = {
        "Clockify-Signature": "sig",
        "Authorization": "Bearer x",
        "X-Addon-Token": "t",
        "x-addon-lifecycle-token": "t",
        "Cookie": "session=1",
        "Clockify-Webhook-Event-Type": "NEW_TAG",
        "Content-Type": "application/json",
    }

    assert safe_headers(headers) == {
        "clockify-webhook-event-type": "NEW_TAG",
        "content-type": "application/json",
    }


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://h.example.com/in?token=abc&x=1", f"https://h.example.com/in?token={MASK}&x=1"),
        ("https://h.example.com/in?key=k1&page=2", f"https://h.example.com/in?key={MASK}&page=2"),
        ("https://h.example.com/?sig=s&access_token=t",
         f"https://h.example.com/?sig={MASK}&access_token={MASK}"),
        ("https://h.example.com/?monkey=1&e={{ event.id }}",
         "https://h.example.com/?monkey=1&e={{ event.id }}"),
        ("https://user:pw@h.example.com/", f"https://user:{MASK}@h.example.com/"),
        ("https://h.example.com/?token=", "https://h.example.com/?token="),
    ],
)  # fmt: skip
def test_redact_url_masks_secret_query_values_and_keeps_the_rest(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("name", "secret"),
    [("Authorization", True), ("X-Api-Key", True), ("X-Custom-Auth", True), ("apiKey", True),
     ("X-Session-Id", True), ("X-Team", False), ("X-Monkey", False), ("Content-Type", False)],
)  # fmt: skip
def test_header_and_parameter_names_that_mark_credentials(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_redact_headers_masks_credential_headers_only() -> None:
    shown = redact_headers({"X-Custom-Auth": "a", "X-Team": "ops", "X-Empty-Key": None})
    assert shown == {"X-Custom-Auth": MASK, "X-Team": "ops", "X-Empty-Key": None}


def test_urls_in_free_text_have_their_secret_query_values_masked() -> None:
    text = "POST https://hooks.example.com/in?token=tok-1&page=2 answered 500"
    assert (
        redact_text(text) == f"POST https://hooks.example.com/in?token={MASK}&page=2 answered 500"
    )


def test_a_value_nested_past_the_bound_is_cut_with_a_marker_not_a_crash() -> None:
    deep: Any = {"token": "t0"}
    for _ in range(5000):
        deep = {"inner": [deep], "password": "p"}

    shown = redact(deep)

    level = shown
    for _ in range(MAX_DEPTH // 2):
        assert level["password"] == MASK
        level = level["inner"][0]
    assert level == TOO_DEEP
