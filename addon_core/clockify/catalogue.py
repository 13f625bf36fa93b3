"""Clockify's operations, indexed by operationId from its OpenAPI document, checked before a call.

CatalogueError          503, the document is missing or is not Clockify's OpenAPI 3 document
UnknownOperationError   404, no operation has that operationId
WorkspaceOverrideError  403, a caller named a workspace other than the installation's
ParameterError          422, a value that cannot be placed in the URL
BaseUrlError            409, the installation has no base URL for the operation's server

The shapes of an operation live in `operation.py` and the reading of the document in
`openapi_reader.py`; this module holds the index, URL building and storing the document.
"""

from __future__ import annotations

import difflib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit
from urllib.request import url2pathname

import httpx
import msgspec

from addon_core.clockify.openapi_reader import read_operations
from addon_core.clockify.openapi_schema import CallValidator, SchemaRegistry
from addon_core.clockify.openapi_schema import (
    ValidationIssue as ValidationIssue,  # validate() answers it
)
from addon_core.clockify.operation import (  # re-exported: callers import them from here
    BASE_URL_KEYS as BASE_URL_KEYS,
)
from addon_core.clockify.operation import (
    WORKSPACE_PARAM as WORKSPACE_PARAM,
)
from addon_core.clockify.operation import (
    Operation as Operation,
)
from addon_core.clockify.operation import (
    Pagination as Pagination,
)
from addon_core.clockify.operation import (
    Parameter as Parameter,
)
from addon_core.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ServiceUnavailableError,
    UnprocessableError,
)

DEFAULT_OPENAPI_URL = "https://docs.clockify.me/openapi.json"

_EXPECTED = f"expected Clockify's OpenAPI 3 document (openapi.json, as at {DEFAULT_OPENAPI_URL})"
_PLACEHOLDER = re.compile(r"\{([^{}/]+)\}")
_WORKSPACE_RULE = "comes from the installation and cannot be overridden: leave it out"


class CatalogueError(ServiceUnavailableError):
    """The OpenAPI document is missing, unreadable or not an OpenAPI 3 document."""


class UnknownOperationError(NotFoundError):
    """No operation in the catalogue has the requested operationId."""


class WorkspaceOverrideError(ForbiddenError):
    """A caller supplied a workspaceId other than the installation's."""


class ParameterError(UnprocessableError):
    """A parameter value cannot be placed in the request URL."""


class BaseUrlError(ConflictError):
    """The installation carries no base URL for the operation's server."""


class Catalogue:
    """Every operation of the document by operationId, with validators built on first use."""

    def __init__(self, operations: Iterable[Operation], registry: SchemaRegistry) -> None:
        self._operations = {operation.operation_id: operation for operation in operations}
        self._registry = registry
        self._validators: dict[str, CallValidator] = {}

    @property
    def definitions(self) -> dict[str, Any]:
        """The converted component schemas, as JSON Schema `$defs`."""
        return self._registry.definitions

    def __len__(self) -> int:
        return len(self._operations)

    def __iter__(self) -> Iterator[Operation]:
        return iter(self._operations.values())

    def __contains__(self, operation_id: object) -> bool:
        return operation_id in self._operations

    def get(self, operation_id: str) -> Operation:
        """Return the operation, or raise `UnknownOperationError` suggesting close ids."""
        try:
            return self._operations[operation_id]
        except KeyError:
            pass
        by_lower = {known.lower(): known for known in self._operations}
        close = difflib.get_close_matches(operation_id.lower(), by_lower, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(by_lower[match] for match in close)}?" if close else ""
        raise UnknownOperationError(
            f"no Clockify operation has the operationId {operation_id!r}{hint}",
            extra={"suggestions": [by_lower[match] for match in close]},
        ) from None

    def filter(
        self, tag: str | None = None, method: str | None = None, text: str | None = None
    ) -> list[Operation]:
        """List the operations with this tag and method whose id, summary or path holds text."""
        tag_key = tag.lower() if tag else None
        method_key = method.upper() if method else None
        needle = text.lower() if text else None
        return [
            operation
            for operation in self
            if (tag_key is None or operation.tag.lower() == tag_key)
            and (method_key is None or operation.method == method_key)
            and (
                needle is None
                or needle in operation.operation_id.lower()
                or needle in operation.summary.lower()
                or needle in operation.path.lower()
            )
        ]

    def tags(self) -> list[str]:
        """List the operations' tags, sorted."""
        return sorted({operation.tag for operation in self})

    def bind(
        self, operation_id: str, params: Mapping[str, Any], workspace_id: str
    ) -> dict[str, Any]:
        """Return the params with `workspaceId` set to the installation's; refuse another one."""
        operation = self.get(operation_id)
        supplied = params.get(WORKSPACE_PARAM)
        if supplied is not None and supplied != workspace_id:
            raise WorkspaceOverrideError(f"{WORKSPACE_PARAM} {_WORKSPACE_RULE} (got {supplied!r})")
        bound = dict(params)
        if operation.takes_workspace:
            bound[WORKSPACE_PARAM] = workspace_id
        return bound

    def validate(
        self,
        operation_id: str,
        params: Mapping[str, Any],
        body: Any | None = None,
        *,
        workspace_id: str | None = None,
    ) -> list[ValidationIssue]:
        """List what is wrong with a call's params and body; empty when it may be sent.

        With `workspace_id` (the installation's), `workspaceId` may be left out and any
        other value is an issue; without it, `workspaceId` is checked like any parameter.
        """
        operation = self.get(operation_id)
        validator = self._validators.get(operation_id)
        if validator is None:
            validator = self._validators[operation_id] = CallValidator(
                self._registry,
                operation.parameters,
                operation.body_schema,
                takes_body=operation.body_media_type is not None,
                body_required=operation.body_required,
            )
        filled = (WORKSPACE_PARAM,) if workspace_id and operation.takes_workspace else ()
        issues = validator.check(params, body, filled=filled)
        if filled and params.get(WORKSPACE_PARAM) not in (None, workspace_id):
            issues.insert(0, ValidationIssue(f"params.{WORKSPACE_PARAM}", _WORKSPACE_RULE))
        return issues


def build_url(operation: Operation, params: Mapping[str, Any], base_urls: Mapping[str, str]) -> str:
    """Return the call's absolute URL: the server's base URL, the filled path and the query.

    Path values are percent-encoded whole (`/`, `?`, `#` cannot escape their segment) and
    empty, `.` or `..` values are refused; lists in the query repeat the name.
    """
    declared = {parameter.name: parameter for parameter in operation.parameters}
    unknown = sorted(set(params) - declared.keys())
    if unknown:
        raise ParameterError(
            f"{operation.operation_id} has no parameter {', '.join(unknown)}; "
            f"known: {', '.join(declared) or 'none'}"
        )
    path = _PLACEHOLDER.sub(lambda match: _path_segment(match.group(1), params), operation.path)
    query = [
        (parameter.name, _text(item))
        for parameter in operation.parameters
        if parameter.location == "query" and params.get(parameter.name) is not None
        for item in _items(params[parameter.name])
    ]
    url = _base_url(operation, base_urls).rstrip("/") + path
    return f"{url}?{urlencode(query, quote_via=quote)}" if query else url


def _base_url(operation: Operation, base_urls: Mapping[str, str]) -> str:
    keys = BASE_URL_KEYS[operation.server_kind]
    for key in keys:
        if base_urls.get(key):
            return base_urls[key]
    hint = ""
    if operation.server_kind == "time_off":
        # The OpenAPI document gives these (deprecated) operations only a placeholder server.
        hint = "; the non-deprecated time-off operations run under backendUrl"
    raise BaseUrlError(
        f"the installation has no {' or '.join(keys)}, so {operation.operation_id} "
        f"({operation.server_kind.replace('_', '-')} server) cannot be called{hint}"
    )


def _path_segment(name: str, params: Mapping[str, Any]) -> str:
    value = params.get(name)
    if value is None:
        raise ParameterError(f"required path parameter {name} is missing")
    text = _text(value)
    if text in ("", ".", ".."):
        raise ParameterError(f"path parameter {name} cannot be {text!r}")
    return quote(text, safe="")


def _items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load_catalogue(path: Path) -> Catalogue:
    """Read Clockify's OpenAPI document and index its operations."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CatalogueError(
            f"cannot read the Clockify OpenAPI document {path} ({exc.strerror or exc}): {_EXPECTED}"
        ) from None
    return parse_catalogue(raw, source=str(path))


def parse_catalogue(raw: bytes, *, source: str = "the OpenAPI document") -> Catalogue:
    """Index the operations of an OpenAPI document given as JSON bytes."""
    try:
        document = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise CatalogueError(f"{source} is not JSON ({exc}): {_EXPECTED}") from None
    if not isinstance(document, dict) or not str(document.get("openapi", "")).startswith("3."):
        raise CatalogueError(f"{source} has no 'openapi: 3.x' version: {_EXPECTED}")
    if not isinstance(document.get("paths"), dict) or not document["paths"]:
        raise CatalogueError(f"{source} has no 'paths': {_EXPECTED} listing its operations")
    try:
        registry = SchemaRegistry(document.get("components", {}).get("schemas", {}))
        return Catalogue(read_operations(document, registry), registry)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CatalogueError(
            f"{source} is not a usable OpenAPI document ({exc!r}): {_EXPECTED}"
        ) from exc


def fetch_openapi(url: str, dest: Path, *, client: httpx.Client | None = None) -> Path:
    """Download Clockify's OpenAPI document to dest, replacing it only with a valid one."""
    http = client or httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0))
    try:
        response = http.get(url)
    except httpx.HTTPError as exc:
        raise CatalogueError(f"could not download the OpenAPI document from {url}: {exc}") from exc
    finally:
        if client is None:
            http.close()
    if response.status_code != 200:
        raise CatalogueError(f"{url} answered {response.status_code}: {_EXPECTED}")
    return _store(response.content, dest, source=url)


def copy_openapi(source: str, dest: Path, *, client: httpx.Client | None = None) -> Path:
    """Store the OpenAPI document at `source` (an http(s) URL, a `file://` URL or a path) in dest.

    The document is checked first: dest is replaced only with a usable one.
    """
    if source.startswith(("https://", "http://")):
        return fetch_openapi(source, dest, client=client)
    path = Path(url2pathname(urlsplit(source).path) if source.startswith("file://") else source)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CatalogueError(
            f"cannot read {path} ({exc.strerror or exc}): pass an http(s) URL, a file:// URL "
            f"or the path of {_EXPECTED}"
        ) from None
    return _store(raw, dest, source=str(path))


def _store(raw: bytes, dest: Path, *, source: str) -> Path:
    parse_catalogue(raw, source=source)  # refuse before anything is written
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(raw)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, dest)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return dest
