"""What arrives in a request: its headers, content type, size-limited body and JSON object.

Every JSON body the add-ons read is decoded here (`decode_json`), so one place bounds its
nesting depth and turns each kind of bad JSON (syntax, invalid UTF-8, numbers out of range,
too deep) into a 400 before anything is stored or run.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Final

import msgspec
from litestar import Request
from litestar.types import Receive

from addon_core.errors import (
    BadRequestError,
    PayloadTooLargeError,
    RequestTimeoutError,
    UnsupportedMediaTypeError,
)

if TYPE_CHECKING:
    from addon_core.settings import AddonSettings


def header_map(request: Request[Any, Any, Any]) -> dict[str, str]:
    """Return the request headers as a plain dict (names lower-case, first value wins).

    One pass over the raw ASGI headers: several times cheaper than `request.headers`,
    which matters on the webhook path.
    """
    headers: dict[str, str] = {}
    for name, value in request.scope["headers"]:
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return headers


def require_json_content_type(headers: dict[str, str]) -> None:
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaTypeError(
            f"the body must be JSON sent as Content-Type: application/json, not {media_type!r}"
            if media_type
            else "the body must be JSON sent as Content-Type: application/json"
        )


async def read_body(
    request: Request[Any, Any, Any], headers: dict[str, str], limit: int, within: float
) -> bytes:
    """Read the body, refusing with 413 as soon as it is known to pass `limit` bytes, and
    with 408 when it has not all arrived `within` seconds."""
    try:
        async with asyncio.timeout(within):
            return await _read_body(request, headers, limit)
    except TimeoutError:
        raise RequestTimeoutError(
            f"the body did not arrive within {within:g} seconds; send it at once",
            reason="body_timeout",
        ) from None


async def _read_body(request: Request[Any, Any, Any], headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadRequestError("the Content-Length header is not a number") from None
        if size > limit:
            raise PayloadTooLargeError(f"the body is {size} bytes; the limit is {limit} bytes")
    # From the ASGI messages: `Request.stream()` builds Litestar's header object first, a
    # measurable share of the webhook path, to learn what `headers` already says.
    body = await receive_body(request.receive, limit)
    if body is None:
        raise PayloadTooLargeError(f"the body is over the limit of {limit} bytes")
    return body


async def receive_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body from the ASGI messages, or None as soon as it passes `limit` bytes.

    A client that disconnects before the end gets a 400 (nothing of it is kept).
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise BadRequestError(
                "the client disconnected before the whole body arrived", reason="disconnected"
            )
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def read_api_body(request: Request[Any, Any, Any], settings: AddonSettings) -> bytes:
    """Read an `/api/` request's body within the size and time limits of the settings."""
    return await read_body(
        request,
        header_map(request),
        settings.max_body_bytes,
        settings.client_body_timeout_seconds,
    )


#: Openers become "(", closers ")", everything else is dropped.
_AS_PARENS: Final = bytes.maketrans(b"[{]}", b"(())")
_NOT_BRACKET: Final = bytes(byte for byte in range(256) if byte not in b"[]{}")


def check_json_depth(raw: bytes, limit: int) -> None:
    """Refuse JSON nested deeper than `limit` arrays and objects, before decoding it.

    Most bodies open fewer containers than the limit in all, which two `bytes.count` calls
    tell (the webhook path pays only those). Otherwise, in C-speed passes: escapes and
    strings are cut out, brackets kept as parentheses, then each pass removes every
    innermost `()`; the number of passes is the depth, so at most `limit + 1` are made.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return
    # An escaped backslash first, then an escaped quote: what is left has no `\"`.
    text = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Split at the quotes left, every other piece is outside the strings.
    outside = b"".join(text.split(b'"')[::2])
    brackets = outside.translate(_AS_PARENS, _NOT_BRACKET)
    for _ in range(limit):
        if not brackets:
            return
        brackets = brackets.replace(b"()", b"")
    if b"(" in brackets and b")" in brackets:  # unbalanced is for the decoder to refuse
        raise BadRequestError(
            f"the JSON nests arrays and objects more than {limit} levels deep; send flatter JSON",
            reason="json_depth",
        )


def decode_json(raw: bytes, *, max_depth: int, what: str = "the body") -> Any:
    """Decode JSON bytes bounded in depth; any bad JSON is a `BadRequestError` (400)."""
    check_json_depth(raw, max_depth)
    try:
        return msgspec.json.decode(raw)
    except UnicodeDecodeError:
        raise BadRequestError(
            f"{what} is not valid JSON: it is not UTF-8; send JSON encoded as UTF-8",
            reason="json",
        ) from None
    except msgspec.DecodeError as exc:  # syntax, or a number out of range
        raise BadRequestError(f"{what} is not valid JSON: {exc}", reason="json") from None
    except RecursionError:
        raise BadRequestError(f"{what} nests JSON too deeply", reason="json_depth") from None


def parse_json_object(body: bytes, *, max_depth: int) -> dict[str, Any]:
    """Parse a body that must be one JSON object."""
    if not body:
        raise BadRequestError("the body is empty; a JSON object is expected")
    value = decode_json(body, max_depth=max_depth)
    if not isinstance(value, dict):
        raise BadRequestError(f"the body must be a JSON object, not a {type(value).__name__}")
    return value
