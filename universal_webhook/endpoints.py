"""Custom inbound webhooks: endpoints with Standard Webhooks secrets, and their intake."""

from __future__ import annotations

from litestar.handlers import BaseRouteHandler

ENDPOINT_ROUTES: list[BaseRouteHandler] = []
