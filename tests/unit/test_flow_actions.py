"""Sending a planned clockify step: what a refusal leaves on the step is masked."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from addon_core.clockify.client import ClockifyAPIError, InstallationContext
from addon_core.flows.actions import send_clockify
from addon_core.flows.plan import PlannedRequest
from addon_core.redaction import MASK
from addon_core.runtime import AddonRuntime

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhcGktc3R1ZGlvIn0.c2lnbmF0dXJl"


class RefusingClient:
    async def call(self, *args: Any, **kwargs: Any) -> Any:
        raise ClockifyAPIError(400, f"the value {JWT} is not valid", operation="getProject")


async def test_a_refusal_message_is_masked_on_the_step() -> None:
    runtime = cast(AddonRuntime, SimpleNamespace(clockify=RefusingClient()))
    planned = PlannedRequest(
        step_id="project",
        type="clockify",
        method="GET",
        url="https://api.clockify.me/api/v1/workspaces/w1/projects/p1",
        operation="getProject",
    )
    outcome = await send_clockify(runtime, InstallationContext("w1", "secret-token"), planned)
    assert outcome.status == "failed"
    assert outcome.response is not None
    assert outcome.response["status"] == 400
    assert JWT not in outcome.response["body"]
    assert MASK in outcome.response["body"]
