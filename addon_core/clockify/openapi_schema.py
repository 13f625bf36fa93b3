"""OpenAPI 3.0 schemas as JSON Schema 2020-12, and calls validated against them.

Component schemas become one `$defs` registry and `$ref`s stay references, so cyclic schemas
never recurse; each operation's schema carries only the `$defs` it reaches. `jsonschema`'s
errors come back as issues that name the field and say what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
COMPONENT_PREFIX = "#/components/schemas/"
DEFS_PREFIX = "#/$defs/"

# Keywords whose value is one schema, a list of schemas, or a map of name to schema;
# every other keyword's value is data (enum, default, required) and is copied as is.
_ONE_SCHEMA = frozenset({"items", "not", "additionalProperties", "contains"})
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties"})
# OpenAPI-only keywords that mean nothing to a JSON Schema validator.
_DROPPED = frozenset({"xml", "discriminator", "externalDocs", "nullable"})
_ANNOTATIONS = ("description", "examples", "default", "deprecated")
_MAX_REF_HOPS = 16
_OBJECT_SHAPE = _SCHEMA_LISTS | {"properties", "additionalProperties", "patternProperties"}


def convert_schema(schema: Any) -> Any:
    """Return the JSON Schema 2020-12 form of an OpenAPI 3.0 schema object."""
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str):
        # OpenAPI 3.0 ignores the siblings of a $ref.
        return {"$ref": _rewrite_ref(ref)}
    converted: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROPPED:
            continue
        if key == "example":
            converted["examples"] = [value]
        elif key in _ONE_SCHEMA:
            converted[key] = convert_schema(value)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            converted[key] = [convert_schema(item) for item in value]
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            converted[key] = {name: convert_schema(item) for name, item in value.items()}
        else:
            converted[key] = value
    _convert_exclusive_bounds(converted)
    _widen_bare_object(converted)
    converted = _unwrap_enum_object(converted)
    if schema.get("nullable") is True:
        converted = _allow_null(converted)
    return converted


def _rewrite_ref(ref: str) -> str:
    if not ref.startswith(COMPONENT_PREFIX):
        raise ValueError(f"unsupported $ref {ref!r}: only {COMPONENT_PREFIX}<name> is resolved")
    return DEFS_PREFIX + ref.removeprefix(COMPONENT_PREFIX)


def _convert_exclusive_bounds(schema: dict[str, Any]) -> None:
    # OpenAPI 3.0 (draft 4) flags a bound as exclusive; 2020-12 makes the bound the value.
    for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(schema.get(flag), bool) and schema.pop(flag) and bound in schema:
            schema[flag] = schema.pop(bound)


def _widen_bare_object(schema: dict[str, Any]) -> None:
    # Springdoc renders java.lang.Object as a bare `type: object`; Clockify uses it for custom
    # field values, which are strings, numbers or lists on the wire: any value is accepted.
    if schema.get("type") == "object" and not _OBJECT_SHAPE.intersection(schema):
        del schema["type"]


def _unwrap_enum_object(schema: dict[str, Any]) -> dict[str, Any]:
    # Springdoc describes a Java enum as `type: object` with a `oneOf` of one string enum
    # (TaskStatus, TaxType, ...); on the wire the value is the string, or a list of them
    # when the example is a list (Feature).
    branches = schema.get("oneOf")
    if schema.get("type") != "object" or not isinstance(branches, list) or len(branches) != 1:
        return schema
    branch = branches[0]
    if not isinstance(branch, dict) or branch.get("type") in (None, "object"):
        return schema
    unwrapped = {key: schema[key] for key in _ANNOTATIONS if key in schema}
    examples = schema.get("examples")
    if isinstance(examples, list) and examples and isinstance(examples[0], list):
        unwrapped.update(type="array", items=branch)
    else:
        unwrapped.update(branch)
    return unwrapped


def _allow_null(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if kind is None:
        return {"anyOf": [schema, {"type": "null"}]}
    widened = dict(schema)
    widened["type"] = [*kind, "null"] if isinstance(kind, list) else [kind, "null"]
    if isinstance(schema.get("enum"), list) and None not in schema["enum"]:
        widened["enum"] = [*schema["enum"], None]
    return widened


def find_refs(schema: Any) -> set[str]:
    """Name every `$defs` entry a converted schema refers to directly."""
    found: set[str] = set()
    pending = [schema]
    while pending:
        node = pending.pop()
        if not isinstance(node, dict):
            continue
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(DEFS_PREFIX):
            found.add(ref.removeprefix(DEFS_PREFIX))
        for key, value in node.items():
            if key in _ONE_SCHEMA:
                pending.append(value)
            elif key in _SCHEMA_LISTS and isinstance(value, list):
                pending.extend(value)
            elif key in _SCHEMA_MAPS and isinstance(value, dict):
                pending.extend(value.values())
    return found


class SchemaRegistry:
    """The document's component schemas, converted once and shared by every operation."""

    def __init__(self, components: Mapping[str, Any]) -> None:
        self.definitions: dict[str, Any] = {
            name: convert_schema(schema) for name, schema in components.items()
        }
        self._refs = {name: find_refs(schema) for name, schema in self.definitions.items()}

    def standalone(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Return the schema with `$schema` and the `$defs` it reaches, ready to validate."""
        reached: set[str] = set()
        pending = list(find_refs(schema))
        while pending:
            name = pending.pop()
            if name in reached:
                continue
            if name not in self._refs:
                raise ValueError(f"$ref to a missing component schema {name!r}")
            reached.add(name)
            pending.extend(self._refs[name] - reached)
        document = {"$schema": JSON_SCHEMA_DIALECT, **schema}
        if reached:
            document["$defs"] = {name: self.definitions[name] for name in sorted(reached)}
        return document


def deref(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow `#/$defs/...` references to the schema they name."""
    for _ in range(_MAX_REF_HOPS):
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            break
        schema = defs[ref.removeprefix(DEFS_PREFIX)]
    return schema


def find_body_paging(schema: Mapping[str, Any]) -> tuple[str, int | None] | None:
    """Locate `page`/`pageSize` in a body schema: the dotted prefix and the size maximum.

    Reports page at the top (expense report) or in a required filter object (the detailed
    report's `detailedFilter`); an optional filter that happens to hold them does not page.
    """
    defs = schema.get("$defs", {})
    root = deref(schema, defs)
    properties = root.get("properties", {})
    candidates = [("", root)]
    candidates += [
        (f"{name}.", deref(properties.get(name, {}), defs)) for name in root.get("required", [])
    ]
    for prefix, node in candidates:
        fields = node.get("properties", {})
        if "page" in fields and "pageSize" in fields:
            return prefix, maximum(deref(fields["pageSize"], defs))
    return None


def maximum(schema: Mapping[str, Any]) -> int | None:
    """Return a schema's numeric `maximum` as an integer, if it declares one."""
    value = schema.get("maximum")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# Bounded: int() refuses text past 4300 digits; longer text is left for the validator to refuse.
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]{1,300}")
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def coerce_parameter(schema: Mapping[str, Any], value: Any) -> Any:
    """Turn a parameter value into the type its schema declares, where it plainly is one.

    Parameters travel as text in the URL, so text stands for an integer, number or boolean
    when it parses as one ("5", "2.5", "true"); an integer stands for text (the time-off
    operations declare `page` as a string); a single value stands for a one-item array.
    Anything else is left as it is, for the validator to report.
    """
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items", {})
        values = value if isinstance(value, list | tuple) else [value]
        return [coerce_parameter(items, item) for item in values]
    if isinstance(value, str):
        if kind == "integer" and _INTEGER_TEXT.fullmatch(value):
            return int(value)
        if kind == "number" and _NUMBER_TEXT.fullmatch(value):
            return float(value)
        if kind == "boolean" and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif kind == "string" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One problem with a call: the field (`body.tagIds[0]`) and what was expected."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ParameterSpec(Protocol):
    """What a validator needs to know of a parameter."""

    @property
    def name(self) -> str: ...
    @property
    def location(self) -> str: ...
    @property
    def required(self) -> bool: ...
    @property
    def schema(self) -> dict[str, Any]: ...


class CallValidator:
    """One operation's parameter and JSON-body validators, built once and reused."""

    def __init__(
        self,
        registry: SchemaRegistry,
        parameters: Iterable[ParameterSpec],
        body_schema: dict[str, Any] | None,
        *,
        takes_body: bool,
        body_required: bool,
    ) -> None:
        # Imported by the first validation: a serving process starts without jsonschema
        # (about 50 ms of imports) and validates only once someone explores an operation.
        from jsonschema import Draft202012Validator

        self._parameters = {parameter.name: parameter for parameter in parameters}
        self._known = ", ".join(self._parameters) or "none"
        properties = {name: parameter.schema for name, parameter in self._parameters.items()}
        self._params = Draft202012Validator(
            registry.standalone({"type": "object", "properties": properties})
        )
        self._body = Draft202012Validator(body_schema) if body_schema is not None else None
        self._takes_body = takes_body
        self._body_required = body_required

    def check(
        self, params: Mapping[str, Any], body: Any, *, filled: Container[str] = ()
    ) -> list[ValidationIssue]:
        """List the call's issues; required parameters named in `filled` are supplied later."""
        issues = [
            ValidationIssue(f"params.{name}", f"unknown parameter; known: {self._known}")
            for name in params
            if name not in self._parameters
        ]
        given = {
            name: value
            for name, value in params.items()
            if value is not None and name in self._parameters
        }
        issues.extend(
            ValidationIssue(f"params.{name}", f"required {parameter.location} parameter")
            for name, parameter in self._parameters.items()
            if parameter.required and name not in given and name not in filled
        )
        values = {
            name: coerce_parameter(self._parameters[name].schema, value)
            for name, value in given.items()
        }
        issues.extend(describe_errors(self._params.iter_errors(values), "params"))
        issues.extend(self._check_body(body))
        return issues

    def _check_body(self, body: Any) -> list[ValidationIssue]:
        if body is None:
            required = self._takes_body and self._body_required
            return [ValidationIssue("body", "required request body")] if required else []
        if not self._takes_body:
            return [ValidationIssue("body", "this operation takes no request body")]
        if self._body is None:
            return []  # multipart bodies (uploadImage, createExpense) are not JSON: not checked
        return describe_errors(self._body.iter_errors(body), "body")


def describe_errors(errors: Iterable[Any], root: str) -> list[ValidationIssue]:
    """Turn `jsonschema` validation errors into issues under root (`params` or `body`)."""
    issues: list[ValidationIssue] = []
    for error in errors:
        field = _field(root, error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, dict):
            # Each missing property is its own error on the parent object.
            for name in error.validator_value:
                issue = ValidationIssue(_field(field, [name]), "required property")
                if name not in error.instance and issue not in issues:
                    issues.append(issue)
        else:
            issues.append(ValidationIssue(field, _expectation(error)))
    return issues


def _field(root: str, path: Iterable[Any]) -> str:
    return root + "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)


_BOUNDS = {
    "minimum": "at least",
    "maximum": "at most",
    "exclusiveMinimum": "more than",
    "exclusiveMaximum": "less than",
}
_SIZES = {
    "minLength": ("at least", "characters"),
    "maxLength": ("at most", "characters"),
    "minItems": ("at least", "items"),
    "maxItems": ("at most", "items"),
}


def _expectation(error: Any) -> str:
    rule, expected, got = error.validator, error.validator_value, error.instance
    if rule == "type":
        kinds = " or ".join(expected) if isinstance(expected, list) else expected
        return f"expected {kinds}, got {_short(got)}"
    if rule == "enum":
        return f"expected one of: {', '.join(map(str, expected))}; got {_short(got)}"
    if rule in _BOUNDS:
        return f"expected {_BOUNDS[rule]} {expected}, got {_short(got)}"
    if rule in _SIZES:
        words, unit = _SIZES[rule]
        return f"expected {words} {expected} {unit}, got {len(got)}"
    if rule == "pattern":
        return f"expected text matching {expected}, got {_short(got)}"
    if rule == "uniqueItems":
        return "expected unique items"
    return str(error.message)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
