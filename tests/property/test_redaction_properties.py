"""Properties of redaction: no secret survives, at any depth, under any key or in any text."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from addon_core.redaction import MASK, SECRET_HEADERS, redact, redact_text
from tests.property.strategies import json_values, keys

SECRET = "s3cr3t-V4LUE-9f8e7d"
secret_keys = st.sampled_from(
    [
        "token",
        "authToken",
        "X-Addon-Token",
        "apiKey",
        "api_key",
        "password",
        "clientSecret",
        "webhookSignature",
        "encryption_keys",
        "privateKey",
        "credentials",
        *sorted(SECRET_HEADERS),
    ]
)
jwts = st.builds(
    lambda a, b, c: f"eyJ{a}.{b}.{c}",
    *(
        st.text(
            alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
            min_size=8,
            max_size=20,
        )
        for _ in range(3)
    ),
)


def bury(value: Any, path: list[tuple[str, Any]]) -> Any:
    """Nest value inside containers along path: ("list", position) or ("dict", key)."""
    for kind, where in reversed(path):
        value = [*([0] * where), value] if kind == "list" else {where: value}
    return value


nesting = st.lists(
    st.one_of(st.tuples(st.just("list"), st.integers(0, 2)), st.tuples(st.just("dict"), keys)),
    max_size=12,
)


@given(path=nesting, key=secret_keys, secret=st.text(min_size=1, max_size=20) | json_values)
def test_a_value_under_a_secret_key_is_masked_at_any_depth(
    path: list[tuple[str, Any]], key: str, secret: Any
) -> None:
    document = bury({key: secret, "kept": 1}, path)
    out = redact(document)
    for kind, where in path:
        out = out[where] if kind == "dict" else out[-1]
    assert out["kept"] == 1
    if secret is not None:
        assert out[key] == MASK


@given(path=nesting, token=jwts, before=st.text(max_size=10), after=st.text(max_size=10))
def test_a_jwt_inside_any_string_is_masked_at_any_depth(
    path: list[tuple[str, Any]], token: str, before: str, after: str
) -> None:
    text = f"{before} {token} {after}"
    assert token not in json.dumps(redact(bury(text, path)))


@given(
    name=st.sampled_from(["Authorization", "x-addon-token", "X-Api-Key", "clockify-signature"]),
    sep=st.sampled_from([": ", "=", ":", '": "']),
    scheme=st.sampled_from(["", "Bearer ", "Basic "]),
    filler=st.text(max_size=15),
)
def test_credential_headers_written_in_free_text_are_masked(
    name: str, sep: str, scheme: str, filler: str
) -> None:
    text = f"{filler} {name}{sep}{scheme}{SECRET} {filler}"
    assert SECRET not in redact_text(text)


@given(
    key=st.sampled_from(["password", "client_secret", "apiKey", "authToken"]),
    quote=st.sampled_from(['"', "'", ""]),
    filler=st.text(max_size=15),
)
def test_key_value_pairs_in_free_text_are_masked(key: str, quote: str, filler: str) -> None:
    text = f"{filler} {quote}{key}{quote}: {quote}{SECRET}{quote} {filler}"
    assert SECRET not in redact_text(text)


@given(
    user=st.text(alphabet="abcdefgh", min_size=1, max_size=8),
    scheme=st.sampled_from(["postgresql+asyncpg", "https", "redis"]),
)
def test_passwords_in_connection_urls_are_masked(user: str, scheme: str) -> None:
    assert SECRET not in redact_text(f"cannot reach {scheme}://{user}:{SECRET}@db.local:5432/x")


@given(value=json_values)
def test_redaction_keeps_shape_and_is_idempotent(value: Any) -> None:
    once = redact(value)
    assert redact(once) == once
    assert type(once) is type(value) or isinstance(value, tuple)
