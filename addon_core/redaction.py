"""Masking of tokens and secrets before anything reaches a log, an error or a response.

One place decides what is secret: values under secret-sounding keys, the
credential headers, and anything shaped like a JWT, wherever it appears. Names of
headers and URL query parameters are read more widely (`key`, `sig`, `X-Custom-Auth`):
there a value is a credential whenever its name says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

MASK = "[redacted]"
#: What stands for the part of a value nested deeper than `MAX_DEPTH` (stored before the
#: intake bounded JSON depth): shown, never recursed into, so no reader can overflow.
TOO_DEEP = "[nested too deep]"
MAX_DEPTH = 128

#: Headers whose values are credentials; never stored, never logged.
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-addon-token",
        "x-addon-lifecycle-token",
        "clockify-signature",
        "webhook-signature",
        "x-api-key",
    }
)

_SECRET_KEY = re.compile(
    r"(?i)token|secret|passw(?:or)?d|api[_-]?key|signature|authorization|"
    r"encryption[_-]?key|private[_-]?key|credential"
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
#: A placeholder in a hint (`Authorization: Bearer <token>`): nothing to hide, so left as is.
_PLACEHOLDER = r"<[A-Za-z][\w .-]{0,40}>(?![^\s'\",;}&])"
_HEADER_VALUE = re.compile(
    r"(?i)\b(authorization|proxy-authorization|x-addon-token|x-addon-lifecycle-token|"
    r"clockify-signature|webhook-signature|x-api-key)(['\"]?\s*[:=]\s*['\"]?)"
    rf"(?!(?:(?:bearer|basic)\s+)?{_PLACEHOLDER})((?:bearer|basic)\s+)?[^\s'\",;}}]+"
)
_KEY_VALUE = re.compile(
    r"(?i)([\"']?\b[\w-]*(?:auth_?token|authToken|secret|password|api_?key|encryption_keys)"
    rf"[\"']?\s*[:=]\s*)(?![\"']?{_PLACEHOLDER})(\"[^\"]*\"|'[^']*'|[^\s,}}&]+)"
)
_DSN_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+(@)")
#: Words that make a header or query parameter name a credential's (`apiKey`, `X-Auth`).
_CREDENTIAL_WORDS = frozenset(
    {"auth", "key", "sig", "sign", "session", "cookie", "pass", "pwd", "jwt", "bearer", "otp"}
)
_NAME_WORDS = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_QUERY_PARAM = re.compile(r"([?&;])([^=&#;]+)=([^&#;]*)")
_URL = re.compile(r"(?i)\bhttps?://[^\s'\"<>]+")


def redact_text(text: str) -> str:
    """Mask every token- or secret-shaped part of a free text."""
    if not text:
        return text
    text = _JWT.sub(MASK, text)
    text = _URL.sub(lambda m: _mask_query(m[0]), text)
    text = _HEADER_VALUE.sub(lambda m: f"{m[1]}{m[2]}{m[3] or ''}{MASK}", text)
    text = _KEY_VALUE.sub(lambda m: f"{m[1]}{_quoted_mask(m[2])}", text)
    return _DSN_PASSWORD.sub(rf"\1{MASK}\2", text)


def _quoted_mask(value: str) -> str:
    if value[:1] in ("'", '"'):
        return f"{value[0]}{MASK}{value[0]}"
    return MASK


def is_secret_key(key: str) -> bool:
    """Tell whether a mapping key names a secret (`authToken`, `x-addon-token`, ...)."""
    lowered = key.lower()
    return lowered in SECRET_HEADERS or bool(_SECRET_KEY.search(key))


def is_secret_name(name: str) -> bool:
    """Tell whether a header or URL query parameter name marks its value as a credential."""
    if is_secret_key(name):
        return True
    words = _NAME_WORDS.split(_CAMEL.sub("-", name).lower())
    return any(word in _CREDENTIAL_WORDS for word in words)


def redact_url(url: str) -> str:
    """Mask a URL's credentials: secret query parameters, a password, any token shape.

    The rest is kept as written (templates included), so a masked URL still reads as
    the one stored.
    """

    return redact_text(_mask_query(url))


def _mask_query(url: str) -> str:
    def mask(match: re.Match[str]) -> str:
        name = match[2]
        if is_secret_name(unquote(name).strip()) and match[3]:
            return f"{match[1]}{name}={MASK}"
        return match[0]

    return _QUERY_PARAM.sub(mask, url)


def redact_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """Mask the values of headers whose names say they are credentials; redact the rest."""
    return {
        name: MASK if is_secret_name(name) and value is not None else redact(value)
        for name, value in headers.items()
    }


def redact(value: Any, _depth: int = 0) -> Any:
    """Return a copy of a JSON-like value with secrets masked, keys and shape kept.

    Arrays and objects deeper than `MAX_DEPTH` become `TOO_DEEP`: the recursion is bounded
    whatever was stored.
    """
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping | list | tuple) and _depth >= MAX_DEPTH:
        return TOO_DEEP
    if isinstance(value, Mapping):
        return {
            k: (
                MASK
                if isinstance(k, str) and is_secret_key(k) and v is not None
                else redact(v, _depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v, _depth + 1) for v in value]
    return value


def safe_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Keep the headers of a request that may be stored: credentials are dropped."""
    return {k.lower(): v for k, v in headers.items() if k.lower() not in SECRET_HEADERS}
