"""Logging set-up: one redacting formatter for every handler, text or JSON lines.

Every line carries the request id, add-on and workspace bound in its context
(addon_core.correlation), so one webhook can be followed to the Clockify calls it causes.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

from addon_core.correlation import ContextFilter
from addon_core.redaction import redact_text

_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


#: Context ids appended to a text line when the record has them.
_CONTEXT_FIELDS = ("request_id", "addon", "workspace_id")


class RedactingFormatter(logging.Formatter):
    """Format a record, then mask tokens and secrets in the whole line (traceback included)."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [
            f"{name}={getattr(record, name)}" for name in _CONTEXT_FIELDS if hasattr(record, name)
        ]
        if ids:
            head, newline, rest = line.partition("\n")
            line = f"{head} [{' '.join(ids)}]{newline}{rest}"
        return redact_text(line)


class JsonFormatter(RedactingFormatter):
    """One JSON object per line: time, level, logger, message, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((k, v) for k, v in record.__dict__.items() if k not in _RESERVED)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact_text(json.dumps(entry, default=str))


def configure_logging(
    level: int, fmt: Literal["text", "json"], stream: TextIO | None = None
) -> None:
    """Route every logger through one redacting handler (uvicorn and Litestar propagate)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # httpx logs every request at INFO; the Clockify client logs what matters (retries,
    # refusals) itself, and a line per call would drown the rest.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
