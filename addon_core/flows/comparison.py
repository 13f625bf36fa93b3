"""How a condition compares two JSON values: type-aware operators and RE2 patterns.

Numbers (numeric text included), ISO-8601 instants and durations, then text; booleans only by
equality. `matches` runs on RE2 (`google-re2`), linear in the subject, with the pattern and
the subject both bounded. Pure: `conditions` reads rules and paths and calls `compare`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, Final

import re2

MAX_PATTERN_LENGTH: Final = 500
#: RE2 is linear in the subject; bounding the subject bounds the time of one match.
MAX_MATCH_INPUT: Final = 10_000
#: RE2's memory budget for one compiled pattern (its default is 8 MiB).
_PATTERN_MEMORY: Final = 1 << 20

_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INSTANT_TEXT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?"
)
# Weeks, days, hours, minutes, seconds; years and months have no fixed length, so no Y or M.
_DURATION_TEXT = re.compile(
    r"P(?:([0-9]+)W)?(?:([0-9]+)D)?"
    r"(?:T(?=[0-9])(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+(?:\.[0-9]+)?)S)?)?"
)
_DURATION_UNITS = (7 * 86400, 86400, 3600, 60, 1)


def compare(op: str, left: Any, right: Any) -> tuple[bool, str | None]:
    """Apply an operator other than exists/not_exists; answer the outcome and why it is false."""
    if op == "matches":
        pattern = _pattern(right) if isinstance(right, str) else None
        if pattern is None:
            return False, "the value is not a valid regular expression"
        if not isinstance(left, str):
            return False, f"matches needs text, got {json_type(left)}"
        return pattern.search(left[:MAX_MATCH_INPUT]) is not None, None
    return _OPERATIONS[op](left, right), None


def _pair(left: Any, right: Any) -> tuple[str, Any, Any] | None:
    """Bring two values to one comparable kind, or None when they do not compare."""
    if isinstance(left, bool) or isinstance(right, bool):
        a, b = _as_bool(left), _as_bool(right)
        return ("bool", a, b) if a is not None and b is not None else None
    if _is_number(left) or _is_number(right):
        x, y = _as_number(left), _as_number(right)
        return ("number", x, y) if x is not None and y is not None else None
    if isinstance(left, str) and isinstance(right, str):
        for kind, convert in _TEXT_KINDS:
            a, b = convert(left), convert(right)
            if a is not None and b is not None:
                return kind, a, b
        return "text", left, right
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _as_number(value: Any) -> int | float | None:
    if isinstance(value, float):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value):
        if any(c in value for c in ".eE"):
            return float(value)
        try:
            return int(value)
        except ValueError:  # past Python's limit on digits for int(): compare it as a float
            return float(value)
    return None


def _as_instant(value: str) -> datetime | None:
    """Read an ISO-8601 date or date-time; a date is its midnight, no offset means UTC."""
    if not _INSTANT_TEXT.fullmatch(value):
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        instant = datetime.fromisoformat(value)
    except ValueError:
        return None
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def parse_duration(value: str) -> float | None:
    """Read an ISO-8601 duration (`PT1H30M`, `P1D`, `P2W`, `PT0.5S`) as seconds, else None."""
    match = _DURATION_TEXT.fullmatch(value)
    if match is None or not any(match.groups()):
        return None
    return sum(
        float(part) * unit
        for part, unit in zip(match.groups(), _DURATION_UNITS, strict=True)
        if part
    )


_TEXT_KINDS: tuple[tuple[str, Callable[[str], Any]], ...] = (
    ("instant", _as_instant),
    ("duration", parse_duration),
    ("number", _as_number),
)


def _equal(left: Any, right: Any) -> bool:
    pair = _pair(left, right)
    if pair is not None:
        return bool(pair[1] == pair[2])
    if left is None or isinstance(left, list | dict):
        return type(left) is type(right) and bool(left == right)
    return False


def _ordered(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(left: Any, right: Any) -> bool:
        pair = _pair(left, right)
        return pair is not None and pair[0] != "bool" and test(pair[1], pair[2])

    return compare


def _contains(left: Any, right: Any) -> bool:
    if isinstance(left, str):
        return isinstance(right, str) and right in left
    return isinstance(left, list) and any(_equal(item, right) for item in left)


def _not_contains(left: Any, right: Any) -> bool:
    if isinstance(left, str):
        return isinstance(right, str) and right not in left
    return isinstance(left, list) and not any(_equal(item, right) for item in left)


def _in(left: Any, right: Any) -> bool:
    return isinstance(right, list) and any(_equal(left, item) for item in right)


def _not_in(left: Any, right: Any) -> bool:
    return isinstance(right, list) and not any(_equal(left, item) for item in right)


def _text_test(test: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    def compare(left: Any, right: Any) -> bool:
        return isinstance(left, str) and isinstance(right, str) and test(left, right)

    return compare


_OPERATIONS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": _equal,
    "ne": lambda left, right: not _equal(left, right),
    "gt": _ordered(lambda a, b: a > b),
    "gte": _ordered(lambda a, b: a >= b),
    "lt": _ordered(lambda a, b: a < b),
    "lte": _ordered(lambda a, b: a <= b),
    "contains": _contains,
    "not_contains": _not_contains,
    "starts_with": _text_test(str.startswith),
    "ends_with": _text_test(str.endswith),
    "in": _in,
    "not_in": _not_in,
}


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is reported to its author, not to stderr
    options.max_mem = _PATTERN_MEMORY
    return options


_RE2_OPTIONS: Final = _options()


@lru_cache(maxsize=512)
def _compile(pattern: str) -> Any:
    """Compile with RE2, or return the reason it refuses the pattern (as text)."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"the regular expression is longer than {MAX_PATTERN_LENGTH} characters"
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        return (
            f"invalid regular expression: {text}; patterns run on RE2, which has no "
            "backreferences (\\1) or lookaround ((?=...), (?<=...)): rewrite the pattern "
            "without them"
        )


def _pattern(pattern: str) -> Any:
    compiled = _compile(pattern)
    return None if isinstance(compiled, str) else compiled


def pattern_problem(pattern: str) -> str | None:
    """Say why a `matches` pattern is refused (too long, not RE2 syntax), or None if it compiles."""
    compiled = _compile(pattern)
    return compiled if isinstance(compiled, str) else None


def json_type(value: Any) -> str:
    """Name the JSON type of a value for a message (`a number`, `text`, `a list`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if _is_number(value):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "a list" if isinstance(value, list) else "an object"
