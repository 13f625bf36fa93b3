"""What every HTTP reader shares: the /api/ caller and its auth (`caller`), request bodies
(`body`), the client guard (`client_limits`), idempotency keys, probes (`health`), the
OpenAPI document of /api/ (`api_docs`, `api_shapes`, `flow_shapes`), and the pages
Clockify shows in its iframe (`pages`: templates, static files, security headers).

The pages are server-rendered shells (Jinja2) that a little plain JavaScript fills
from the same `/api/` any client calls, with the user token Clockify puts in the URL
held in memory only. See `addon_core.web.pages`.
"""

from addon_core.web.pages import CORE_SECTIONS, page_router, template_config

__all__ = ["CORE_SECTIONS", "page_router", "template_config"]
