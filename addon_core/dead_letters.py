"""Dead jobs over the JSON API: list them and send them back to the queue."""

from __future__ import annotations

from litestar.handlers import BaseRouteHandler

DEAD_LETTER_ROUTES: list[BaseRouteHandler] = []
