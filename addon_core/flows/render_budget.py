"""How much a flow template may render: per value and per request (one action's values).

Sizes are characters of text, or of compact JSON for other values. `RenderBudget` is
charged piece by piece while rendering, so a limit is found passed before the piece that
passes it is joined or copied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

DEFAULT_VALUE_LIMIT: Final = 64 * 1024
DEFAULT_REQUEST_LIMIT: Final = 1024 * 1024


class OverBudgetError(Exception):
    """A rendered value would pass a limit; the steps to it are gathered on the way out."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.placeholder: str | None = None
        self.steps: list[str | int] = []


@dataclass(frozen=True, slots=True)
class TemplateLimits:
    """The most one rendered value and one request's rendered values may hold."""

    value: int = DEFAULT_VALUE_LIMIT
    request: int = DEFAULT_REQUEST_LIMIT


class RenderBudget:
    """What is left of one request's size limit; share one across the values of a request."""

    __slots__ = ("limits", "used")

    def __init__(self, limits: TemplateLimits | None = None) -> None:
        self.limits = limits or TemplateLimits()
        self.used = 0

    @property
    def room(self) -> int:
        """The most the next value may hold: its own limit or what the request has left."""
        return min(self.limits.value, self.limits.request - self.used)

    def charge(self, size: int) -> None:
        if size > self.limits.value:
            raise OverBudgetError(
                f"the rendered value is over {self.limits.value} characters, the limit of "
                "one value; send less (a field of the event rather than all of it) or raise "
                "the limit (docs/configuration.md)"
            )
        if self.used + size > self.limits.request:
            raise OverBudgetError(
                f"the rendered request is over {self.limits.request} characters, the limit "
                "of one request; send less or raise the limit (docs/configuration.md)"
            )
        self.used += size


def json_size(value: Any, cap: int) -> int:
    """Estimate a JSON value's compact size, stopping once it passes `cap` (no copy made)."""
    if isinstance(value, str):
        return len(value)
    size = 0
    stack = [value]
    while stack and size <= cap:
        item = stack.pop()
        if isinstance(item, str):
            size += len(item) + 3  # quotes and a separator
        elif isinstance(item, dict):
            size += 2
            for key, inner in item.items():
                size += len(str(key)) + 4
                stack.append(inner)
        elif isinstance(item, list):
            size += 2
            stack.extend(item)
        else:
            size += 8  # a number, a boolean or null; an estimate is enough for a bound
    return size
