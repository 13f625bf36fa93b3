"""Reading JSON bodies: depth bounded before decoding, every kind of bad JSON a 400."""

from __future__ import annotations

import json

import pytest

from addon_core.errors import BadRequestError
from addon_core.web.body import check_json_depth, decode_json, parse_json_object


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("depth", [1, 8, 64])
def test_json_up_to_the_depth_limit_is_read(depth: int) -> None:
    assert decode_json(nested(depth), max_depth=64) == json.loads(nested(depth))


@pytest.mark.parametrize("depth", [65, 500, 100_000])
def test_json_past_the_depth_limit_is_refused_before_decoding(depth: int) -> None:
    with pytest.raises(BadRequestError) as caught:
        decode_json(nested(depth), max_depth=64)

    assert caught.value.status_code == 400
    assert "more than 64 levels deep" in caught.value.detail


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"a": "[" * 500 + "{" * 500, "b": ['"\\[[[', "\\"], "c": [[["x"]]]})

    check_json_depth(text.encode(), 4)
    with pytest.raises(BadRequestError):
        check_json_depth(text.encode(), 3)


def test_many_sibling_containers_are_not_depth() -> None:
    body = json.dumps({"items": [{"id": i, "tags": [i]} for i in range(1000)]}).encode()

    check_json_depth(body, 4)  # object, array, object, array


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"a": "\xff"}', "it is not UTF-8"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b'{"a": 1' + b"9" * 5000 + b"}", "not valid JSON"),
        (b'{"a": 1e999}', "not valid JSON"),
        (b'{"a": ', "not valid JSON"),
    ],
)
def test_bad_json_is_a_400_saying_what_is_wrong(body: bytes, says: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        parse_json_object(body, max_depth=64)

    assert caught.value.status_code == 400
    assert says in caught.value.detail
