"""Secrets in flow documents: masked for every reader, kept when an editor sends them back.

An http action's URL (secret query parameters, a password), its credential headers
and the secret fields of its body are shown as `[redacted]`, by the rules of
`addon_core.redaction`. A PUT that returns a masked value exactly as it was shown
keeps the stored secret; any other value replaces it. A masked value is kept only
while the action still calls the same origin: moved to another host, its secrets
must be sent again, so an edit can never redirect a stored credential.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from addon_core.errors import UnprocessableError
from addon_core.redaction import MASK, redact, redact_headers, redact_url

#: The parts of an http action holding secrets, and how each is masked.
_MASKERS: dict[str, Callable[[Any], Any]] = {
    "url": lambda url: redact_url(url) if isinstance(url, str) else url,
    "headers": lambda headers: redact_headers(headers) if isinstance(headers, dict) else headers,
    "body": redact,
}


def mask_document(document: Mapping[str, Any]) -> dict[str, Any]:
    """Return a stored document as shown: secrets of http actions masked."""
    shown = dict(document)
    actions = document.get("actions")
    if isinstance(actions, list):
        shown["actions"] = [mask_action(action) for action in actions]
    return shown


def mask_action(action: Any) -> Any:
    """Return an action as shown: an http action's URL, headers and body masked."""
    if not isinstance(action, dict) or action.get("type") != "http":
        return action
    masked = dict(action)
    for part, mask in _MASKERS.items():
        if part in action:
            masked[part] = mask(action[part])
    return masked


def mask_request(request: Any) -> Any:
    """Mask a stored step's request again as it is read: steps recorded before a rule
    was added to `addon_core.redaction` are shown by today's rules (masking is idempotent)."""
    if not isinstance(request, dict):
        return request
    masked = dict(request)
    for part, mask in _MASKERS.items():
        if part in request:
            masked[part] = mask(request[part])
    return masked


def keep_masked_secrets(document: Any, stored: Mapping[str, Any]) -> Any:
    """Put stored secrets back where a PUT returns them exactly as a GET masked them.

    Actions are matched by id. Raises `UnprocessableError` naming the field when a
    masked value comes back on an action whose URL now points at another origin.
    """
    if not isinstance(document, dict) or not isinstance(document.get("actions"), list):
        return document
    before = {
        action.get("id"): action
        for action in stored.get("actions") or []
        if isinstance(action, dict) and action.get("type") == "http"
    }
    actions = []
    for index, action in enumerate(document["actions"]):
        old = before.get(action.get("id")) if isinstance(action, dict) else None
        if old is None or action.get("type") != "http":
            actions.append(action)
            continue
        if _origin(action.get("url")) != _origin(old.get("url")):
            _refuse_moved_secrets(action, index)
            actions.append(action)
            continue
        restored = dict(action)
        for part, mask in _MASKERS.items():
            if part in action and part in old:
                restored[part] = _restore(action[part], old[part], mask(old[part]))
        actions.append(restored)
    return {**document, "actions": actions}


def _restore(sent: Any, stored: Any, shown: Any) -> Any:
    """`sent` with every part equal to its masked form (`shown`) replaced by `stored`."""
    if sent == shown and shown != stored:
        return stored
    if isinstance(sent, dict) and isinstance(stored, dict) and isinstance(shown, dict):
        return {
            key: _restore(value, stored[key], shown[key])
            if key in stored and key in shown
            else value
            for key, value in sent.items()
        }
    if isinstance(sent, list) and isinstance(stored, list) and isinstance(shown, list):
        return [
            _restore(value, stored[i], shown[i]) if i < len(stored) and i < len(shown) else value
            for i, value in enumerate(sent)
        ]
    return sent


def _origin(url: Any) -> tuple[str, str] | None:
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    return parts.scheme.lower(), parts.netloc.rpartition("@")[2].lower()


def _refuse_moved_secrets(action: dict[str, Any], index: int) -> None:
    where = [part for part in _MASKERS if part in action and _holds_mask(action[part])]
    if where:
        field = f"actions[{index}].{where[0]}"
        raise UnprocessableError(
            f"{field} still holds {MASK}, but the action now calls another host: "
            "send its secret values again (a stored secret never follows an action to a "
            "new host)",
            extra={"errors": [{"field": field, "message": f"send the value, not {MASK}"}]},
        )


def _holds_mask(value: Any) -> bool:
    if isinstance(value, str):
        return MASK in value
    if isinstance(value, dict):
        return any(_holds_mask(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_mask(item) for item in value)
    return False
