"""A local Clockify: a loopback HTTP server with seeded data, signed tokens, rate limits and
faults, and a driver that sends an add-on app Clockify's lifecycle calls and webhooks.
"""

from addon_core.sandbox.gate import Fault, RecordedRequest
from addon_core.sandbox.seed import Sizes
from addon_core.sandbox.server import Sandbox
from addon_core.sandbox.store import SandboxStore
from addon_core.sandbox.workspace import Workspace, object_id

__all__ = [
    "Fault",
    "RecordedRequest",
    "Sandbox",
    "SandboxStore",
    "Sizes",
    "Workspace",
    "object_id",
]
