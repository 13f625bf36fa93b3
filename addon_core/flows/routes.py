"""The flows, executions and events JSON API of CONTRACT.md."""

from __future__ import annotations

from litestar.handlers import BaseRouteHandler

FLOW_ROUTES: list[BaseRouteHandler] = []
