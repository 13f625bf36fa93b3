"""The add-on's pages under `/ui/`: the sidebar shell, its static files and their headers.

Clockify opens the sidebar component with `?auth_token=<user token>`. The page checks
the token like any `/api/` call does (the marketplace docs, "Authentication &
Authorization") and renders the sections for the token's role and theme; the script
then reads the token from the address bar once, removes it and keeps it in memory.
Every `/ui/` response carries the security headers of `security_headers`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from litestar import MediaType, Request, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.params import FromQuery
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from addon_core.clockify.tokens import TokenKind
from addon_core.errors import AddonError
from addon_core.runtime import Runtime
from addon_core.settings import AddonSettings
from addon_core.web.caller import WRITER_ROLES

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
#: The sections every add-on shows; an app spec adds its own (`page_sections`).
CORE_SECTIONS: tuple[str, ...] = ("overview", "events", "flows", "explorer")
_TITLES = {
    "overview": "Overview",
    "events": "Events",
    "flows": "Flows",
    "explorer": "Explorer",
    "endpoints": "Endpoints",
    "coverage": "Coverage",
    "audit": "Audit",
}
#: Sections only OWNER and ADMIN see (their API refuses a USER).
WRITER_SECTIONS: tuple[str, ...] = ("audit",)


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """Jinja2 over the package's templates (autoescaped)."""
    return TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine)


def security_headers(settings: AddonSettings) -> list[tuple[str, str]]:
    """Headers of every page: the CSP (framing by Clockify only), no referrer, nosniff."""
    policy = "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "font-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            f"frame-ancestors {' '.join(settings.frame_ancestors)}",
        ]
    )
    return [
        ("content-security-policy", policy),
        # The user token travels in the page's URL: it must never leave in a Referer.
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
    ]


def with_headers(headers: list[tuple[str, str]]) -> Callable[[ASGIApp], ASGIApp]:
    """Middleware adding `headers` to every response (pages, static files, errors)."""
    encoded = [(name.encode(), value.encode()) for name, value in headers]

    def middleware(app: ASGIApp) -> ASGIApp:
        async def add_headers(scope: Scope, receive: Receive, send: Send) -> None:
            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", []), *encoded]
                await send(message)

            await app(scope, receive, send_with_headers)

        return add_headers

    return middleware


def static_version() -> str:
    """A digest of the static files, so a new release never runs yesterday's cached script."""
    digest = hashlib.sha256()
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def page_router(settings: AddonSettings, sections: Sequence[str]) -> Router:
    """The `/ui/` router: the sidebar page and the static files, with the security headers."""
    version = static_version()
    shown = (*CORE_SECTIONS, *sections)

    @get(
        "/sidebar",
        name="sidebar",
        media_type=MediaType.HTML,
        sync_to_thread=False,
        cache_control=CacheControlHeader(no_store=True),
    )
    def sidebar(
        request: Request[Any, Any, Any], runtime: Runtime, auth_token: FromQuery[str | None] = None
    ) -> Template:
        """Render the sidebar for the user token's role and theme, or say why not."""
        title = request.app.state.spec.title
        base = {"title": title, "static": f"/ui/static/{version}"}
        try:
            claims = runtime.verify_token(auth_token, TokenKind.USER)
        except AddonError as exc:
            reason = (
                "This page opens from Clockify's sidebar, which adds the user token."
                if not auth_token
                else exc.detail
            )
            return Template(
                "refused.html.j2",
                context={**base, "reason": reason, "theme": "light"},
                status_code=exc.status_code,
            )
        role = claims.workspace_role or ""
        context = {
            **base,
            "theme": "dark" if str(claims.raw.get("theme", "")).upper() == "DARK" else "light",
            "role": role,
            "can_write": role in WRITER_ROLES,
            "sections": [
                (name, _TITLES.get(name, name.title()))
                for name in (*shown, *(WRITER_SECTIONS if role in WRITER_ROLES else ()))
            ],
        }
        return Template("sidebar.html.j2", context=context)

    # The version is in the path, so the modules' relative imports carry it too and a
    # release never mixes with yesterday's cached files: they can be cached for long.
    static = create_static_files_router(
        path=f"/static/{version}",
        directories=[STATIC],
        name="ui-static",
        cache_control=CacheControlHeader(max_age=86400, public=True),
        include_in_schema=False,
    )
    return Router(
        path="/ui",
        route_handlers=[sidebar, static],
        middleware=[with_headers(security_headers(settings))],
        include_in_schema=False,
    )
