"""The API explorer: Clockify's operations listed, described and run for the caller's workspace."""

from __future__ import annotations

from litestar.handlers import BaseRouteHandler

EXPLORER_ROUTES: list[BaseRouteHandler] = []
