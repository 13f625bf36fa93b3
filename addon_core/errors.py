"""The one exception tree of the add-ons, each error carrying its HTTP status.

    AddonError                       500, the root; never raised bare
    ├── ConfigError                  start-up: a setting is missing or invalid
    ├── BadRequestError              400, malformed input
    │   └── UnprocessableError       422, well-formed but not acceptable
    ├── UnauthorizedError            401, a missing or invalid Clockify token
    ├── ForbiddenError               403, a valid token that may not do this
    ├── NotFoundError                404
    ├── RequestTimeoutError          408, the client took too long to send its request
    ├── ConflictError                409, the state does not allow it (not installed, inactive)
    ├── PayloadTooLargeError         413
    ├── UnsupportedMediaTypeError    415
    └── ServiceUnavailableError      503, a dependency (the database) is down

Modules add leaves where they meet the failure: `security` (TokenError 401,
ClaimMismatchError 403), `hosts` (HostNotAllowedError 403), `intake`
(NotInstalledError 409), `database` (DatabaseUnavailableError 503), `encryption`
(DecryptionError 500), `catalogue` (CatalogueError 503, UnknownOperationError 404,
...). `addon_core.app` maps the tree to JSON responses in one handler.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AddonError(Exception):
    """Root of every error the add-ons raise on purpose."""

    status_code: ClassVar[int] = 500

    def __init__(
        self,
        detail: str,
        *,
        extra: dict[str, Any] | None = None,
        reason: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        #: response headers the refusal carries (`Retry-After`, `X-RateLimit-*`)
        self.headers = headers or {}
        #: a short, bounded label for metrics (`signature`, `not_installed`, ...)
        self.reason = reason or type(self).__name__


class ConfigError(AddonError):
    """A setting is missing or invalid; start-up stops with this one line."""


class BadRequestError(AddonError):
    status_code = 400


class UnprocessableError(BadRequestError):
    status_code = 422


class UnauthorizedError(AddonError):
    status_code = 401


class ForbiddenError(AddonError):
    status_code = 403


class NotFoundError(AddonError):
    status_code = 404


class RequestTimeoutError(AddonError):
    status_code = 408


class ConflictError(AddonError):
    status_code = 409


class PayloadTooLargeError(AddonError):
    status_code = 413


class UnsupportedMediaTypeError(AddonError):
    status_code = 415


class TooManyRequestsError(AddonError):
    status_code = 429


class ServiceUnavailableError(AddonError):
    status_code = 503
