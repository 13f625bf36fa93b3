"""A small Clockify-like shell at the sandbox's root that frames the installed add-on's pages.

The sidebar loads in an iframe from the app's own origin (another port: cross-origin,
as in Clockify) with `?auth_token=<user token>`. The shell answers the page's window
messages as Clockify does: `refreshAddonToken` with a freshly signed user token posted
back as `{"title": "refreshAddonToken", "body": <token>}`, and `toastrPop` with a toast.
`/?role=USER&theme=DARK&expiresIn=60` opens it as another user, theme or token life.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Annotated, Any

from litestar import MediaType, Request, Response, get
from litestar.params import FromPath, FromQuery, QueryParameter

from addon_core.errors import ConflictError

HERE = Path(__file__).parent / "shell"
_ASSETS = {"shell.js": "text/javascript", "shell.css": "text/css"}
ROLES = frozenset({"OWNER", "ADMIN", "TEAM_MANAGER", "PROJECT_MANAGER", "USER"})


@get("/", name="sandbox-shell", media_type=MediaType.HTML, sync_to_thread=False)
def shell_page(
    request: Request[Any, Any, Any],
    role: FromQuery[str] = "OWNER",
    theme: FromQuery[str] = "DEFAULT",
    expires_in: Annotated[int, QueryParameter(name="expiresIn")] = 1800,
) -> Response[str]:
    """The shell: Clockify's frame around the installed add-on's sidebar."""
    try:
        app_url, _workspace = request.app.state.sandbox.installed
    except ConflictError:
        return Response(
            "<!doctype html><title>Sandbox</title><p>Nothing is installed yet: "
            "run <code>clockify-addons sandbox APP</code>.</p>",
            media_type=MediaType.HTML,
            status_code=409,
        )
    values = {
        "app": app_url,
        "role": role.upper() if role.upper() in ROLES else "OWNER",
        "theme": "DARK" if theme.upper() == "DARK" else "DEFAULT",
        "expires": str(min(max(expires_in, 5), 1800)),
    }
    attributes = " ".join(f'data-{k}="{html.escape(v)}"' for k, v in values.items())
    page = (HERE / "index.html").read_text().replace("<body>", f"<body {attributes}>", 1)
    return Response(page, media_type=MediaType.HTML, headers={"Cache-Control": "no-store"})


@get("/_sandbox/shell/{name:str}", name="sandbox-shell-asset", sync_to_thread=False)
def shell_asset(name: FromPath[str]) -> Response[bytes]:
    """The shell's script and style sheet."""
    if name not in _ASSETS:
        return Response(b"not found", status_code=404, media_type=MediaType.TEXT)
    return Response((HERE / name).read_bytes(), media_type=_ASSETS[name])


SHELL_HANDLERS = [shell_page, shell_asset]
