"""Idempotency keys for the writes of the JSON API: a retried `POST` or `PATCH` runs once.

A client that sends `Idempotency-Key: <key>` with a `POST` or `PATCH` under `/api/` gets
the first request's answer for every retry with that key and the same request, for
24 hours, marked `Idempotent-Replay: true`. The key is scoped to the caller's workspace
(taken from the verified user token). A retry with another method, path or body answers
422; a retry while the first request still runs answers 409 with `Retry-After`.

The claim on a key is a row inserted before the request runs: the primary key makes the
insert the one point of agreement between requests, processes and replicas sharing one
PostgreSQL. The answer is stored when the request ends below 500; a server error or a
crash gives the key back (a claim left running for longer than `STALE_CLAIM` is taken
over), so a retry can succeed later.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import anyio
from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPDisconnectEvent,
    HTTPRequestEvent,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from addon_core.clockify.tokens import TokenKind
from addon_core.errors import AddonError
from addon_core.runtime import AddonRuntime
from addon_core.storage.models import IdempotencyRecord
from addon_core.storage.retention import IDEMPOTENCY_KEPT_FOR
from addon_core.storage.scope import scoped
from addon_core.web.body import receive_body

log = logging.getLogger(__name__)

HEADER = b"idempotency-key"
REPLAY_HEADER = b"idempotent-replay"
METHODS = frozenset({"POST", "PATCH"})
KEPT_FOR = IDEMPOTENCY_KEPT_FOR
#: A claim whose request has run this long without an answer is taken as abandoned.
STALE_CLAIM = timedelta(minutes=2)
MAX_KEY_LENGTH = 255
#: Answers larger than this are not kept: a retry runs the request again.
MAX_STORED_ANSWER = 256 * 1024


@dataclass(frozen=True, slots=True)
class Stored:
    status: int
    body: bytes
    content_type: str


Claim = Literal["run", "busy", "mismatch"] | Stored


def idempotent(app: ASGIApp, runtime: AddonRuntime) -> ASGIApp:
    """Wrap the app so that `/api/` writes with an `Idempotency-Key` run once."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        key = _key_of(scope)
        if key is None:
            await app(scope, receive, send)
            return
        problem = check_key(key)
        if problem is not None:
            await _refuse(send, 400, problem)
            return
        workspace_id = _workspace_of(scope, runtime)
        if workspace_id is None:  # no valid user token: the route answers 401 itself
            await app(scope, receive, send)
            return
        try:
            with anyio.fail_after(runtime.settings.client_body_timeout_seconds):
                body = await receive_body(receive, runtime.settings.max_body_bytes)
        except TimeoutError:
            seconds = runtime.settings.client_body_timeout_seconds
            await _refuse(send, 408, f"the request body took longer than {seconds} s to arrive")
            return
        if body is None:
            limit = runtime.settings.max_body_bytes
            await _refuse(send, 413, f"the request body is larger than {limit} bytes")
            return
        digest = _digest(scope, body)
        claim = await claim_key(runtime, workspace_id, key, digest)
        if isinstance(claim, Stored):
            await _replay(send, claim)
            return
        if claim == "busy":
            await _refuse(
                send,
                409,
                "a request with this Idempotency-Key is still running; retry when it has answered",
                retry_after=True,
            )
            return
        if claim == "mismatch":
            await _refuse(send, 422, "this Idempotency-Key was used for a different request "
                          "(method, path or body); use a new key for a new request")  # fmt: skip
            return
        await _run_and_store(app, scope, body, send, runtime, workspace_id, key)

    return middleware


def _key_of(scope: Scope) -> str | None:
    if scope["type"] != ScopeType.HTTP or scope.get("method") not in METHODS:
        return None
    if not scope["path"].startswith("/api/"):
        return None
    for name, value in scope["headers"]:
        if name == HEADER:
            return value.decode("latin-1")
    return None


def _workspace_of(scope: Scope, runtime: AddonRuntime) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer":
                return None
            try:
                return runtime.verify_token(token.strip(), TokenKind.USER).workspace_id
            except AddonError:
                return None
    return None


def _digest(scope: Scope, body: bytes) -> bytes:
    method = str(scope.get("method", "")).encode()
    hasher = hashlib.sha256()
    for part in (method, scope["path"].encode(), scope.get("query_string", b"")):
        hasher.update(len(part).to_bytes(8, "big") + part)
    hasher.update(body)
    return hasher.digest()


def check_key(key: str) -> str | None:
    """Why `key` cannot be an idempotency key, or None when it can."""
    if not key or len(key) > MAX_KEY_LENGTH:
        return f"the Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters"
    if not key.isascii() or not key.isprintable():
        return "the Idempotency-Key must be printable ASCII"
    return None


async def claim_key(runtime: AddonRuntime, workspace_id: str, key: str, digest: bytes) -> Claim:
    """Claim `key` for a request with `digest`, or say what its earlier use answered."""
    addon = runtime.addon_key
    for _ in range(3):
        now = datetime.now(UTC)
        async with runtime.sessions() as session:
            existing = await session.get(IdempotencyRecord, (addon, workspace_id, key))
            if existing is not None:
                created = existing.created_at
                expired = created < now - KEPT_FOR
                abandoned = existing.status is None and created < now - STALE_CLAIM
                if not (expired or abandoned):
                    if existing.request_hash != digest:
                        return "mismatch"
                    if existing.status is None:
                        return "busy"
                    return Stored(existing.status, existing.response or b"",
                                  existing.content_type or "application/json")  # fmt: skip
                await session.delete(existing)
                await session.flush()
            session.add(IdempotencyRecord(addon_key=addon, workspace_id=workspace_id, key=key,
                                          request_hash=digest, created_at=now))  # fmt: skip
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                continue  # another request claimed it first: read what it holds
            return "run"
    return "busy"


async def _run_and_store(
    app: ASGIApp,
    scope: Scope,
    body: bytes,
    send: Send,
    runtime: AddonRuntime,
    workspace_id: str,
    key: str,
) -> None:
    delivered = False
    status = 500
    content_type = "application/json"
    captured: list[bytes] | None = []

    async def receive() -> ReceiveMessage:
        nonlocal delivered
        if delivered:
            return HTTPDisconnectEvent(type="http.disconnect")
        delivered = True
        return HTTPRequestEvent(type="http.request", body=body, more_body=False)

    async def capture(message: Message) -> None:
        nonlocal status, content_type, captured
        if message["type"] == "http.response.start":
            status = message["status"]
            for name, value in message.get("headers", []):
                if name.lower() == b"content-type":
                    content_type = value.decode("latin-1")
        elif message["type"] == "http.response.body" and captured is not None:
            captured.append(message.get("body", b""))
            if sum(map(len, captured)) > MAX_STORED_ANSWER:
                captured = None
        await send(message)

    stored = False
    try:
        await app(scope, receive, capture)
        if status < 500 and captured is not None:
            await _store(
                runtime, workspace_id, key, Stored(status, b"".join(captured), content_type)
            )
            stored = True
    finally:
        if not stored:
            await _release(runtime, workspace_id, key)


async def _store(runtime: AddonRuntime, workspace_id: str, key: str, answer: Stored) -> None:
    async with runtime.sessions() as session, session.begin():
        record = await session.get(IdempotencyRecord, (runtime.addon_key, workspace_id, key))
        if record is not None:
            record.status = answer.status
            record.response = answer.body
            record.content_type = answer.content_type[:100]


async def _release(runtime: AddonRuntime, workspace_id: str, key: str) -> None:
    """Give the key back after a server error, so that a retry can run."""
    try:
        async with runtime.sessions() as session, session.begin():
            await session.execute(
                delete(IdempotencyRecord).where(
                    *scoped(IdempotencyRecord, runtime.addon_key, workspace_id),
                    IdempotencyRecord.key == key,
                    IdempotencyRecord.status.is_(None),
                )
            )
    except Exception:  # the database may be what failed: the claim then goes stale
        log.warning("could not release an idempotency key; it is taken over after %s", STALE_CLAIM)


async def _replay(send: Send, answer: Stored) -> None:
    headers = [
        (b"content-type", answer.content_type.encode("latin-1")),
        (b"content-length", str(len(answer.body)).encode()),
        (REPLAY_HEADER, b"true"),
    ]
    await _answer(send, answer.status, headers, answer.body)


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    start = HTTPResponseStartEvent(type="http.response.start", status=status, headers=headers)
    await send(start)
    await send(HTTPResponseBodyEvent(type="http.response.body", body=body, more_body=False))


async def _refuse(send: Send, status: int, detail: str, *, retry_after: bool = False) -> None:
    body = json.dumps({"status_code": status, "detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after:
        headers.append((b"retry-after", b"1"))
    await _answer(send, status, headers, body)
