"""The baseline: a bare Litestar endpoint that only parses the JSON body."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar, Request, Response, post


@post("/webhooks/clockify/new-time-entry", status_code=200)
async def receive(request: Request[Any, Any, Any]) -> Response[bytes]:
    msgspec.json.decode(await request.body())
    return Response(b'{"status":"accepted"}', media_type="application/json")


app = Litestar([receive], logging_config=None, openapi_config=None)
