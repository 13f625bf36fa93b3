"""The operation catalogue over Clockify's OpenAPI document: index, validation, URLs, download."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from addon_core.clockify.catalogue import (
    DEFAULT_OPENAPI_URL,
    BaseUrlError,
    Catalogue,
    CatalogueError,
    Pagination,
    ParameterError,
    UnknownOperationError,
    ValidationIssue,
    WorkspaceOverrideError,
    build_url,
    copy_openapi,
    fetch_openapi,
    load_catalogue,
    parse_catalogue,
)
from addon_core.clockify.openapi_schema import convert_schema, find_refs

WORKSPACE = "64a687e29ae1f428e7ebe303"
BASE_URLS = {
    "backendUrl": "https://api.clockify.me/api",
    "reportsUrl": "https://reports.api.clockify.me",
}


@pytest.fixture(scope="module")
def openapi_path(reference_dir: Path) -> Path:
    return reference_dir / "openapi.json"


@pytest.fixture(scope="module")
def catalogue(openapi_path: Path) -> Catalogue:
    return load_catalogue(openapi_path)


def issues_of(
    catalogue: Catalogue, operation_id: str, params: dict[str, Any], body: Any = None
) -> dict[str, str]:
    return {issue.field: issue.message for issue in catalogue.validate(operation_id, params, body)}


def tiny_document(schemas: dict[str, Any], body_ref: str) -> bytes:
    operation = {
        "operationId": "createNode",
        "tags": ["Project"],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": body_ref}}},
        },
    }
    document = {
        "openapi": "3.0.1",
        "paths": {
            "/v1/nodes": {"servers": [{"url": "https://api.clockify.me/api"}], "post": operation}
        },
        "components": {"schemas": schemas},
    }
    return json.dumps(document).encode()


# --- the index ----------------------------------------------------------------------------


def test_every_operation_of_the_document_is_indexed_once(
    catalogue: Catalogue, openapi_path: Path
) -> None:
    document = json.loads(openapi_path.read_bytes())
    ids = [
        spec["operationId"]
        for item in document["paths"].values()
        for method, spec in item.items()
        if method != "servers"
    ]
    assert len(ids) == 170
    assert sorted(operation.operation_id for operation in catalogue) == sorted(ids)
    assert len(catalogue) == 170


def test_server_kinds_follow_each_path_items_server(catalogue: Catalogue) -> None:
    kinds = Counter(operation.server_kind for operation in catalogue)
    assert kinds == {"regular": 146, "reports": 10, "time_off": 14}
    assert catalogue.get("getPtoPolicy").server_kind == "time_off"
    assert catalogue.get("getPolicy").server_kind == "regular"


@pytest.mark.parametrize(
    ("operation_id", "method", "path", "scope", "pagination"),
    [
        (
            "getProjects",
            "GET",
            "/v1/workspaces/{workspaceId}/projects",
            "PROJECT_READ",
            Pagination("query", "page", "page-size", None),
        ),
        (
            "getInProgressTimeEntries",
            "GET",
            "/v1/workspaces/{workspaceId}/time-entries/status/in-progress",
            "TIME_ENTRY_READ",
            Pagination("query", "page", "page-size", 1000),
        ),
        (
            "getBalancesForPolicy",
            "GET",
            "/v1/workspaces/{workspaceId}/time-off/balance/policy/{policyId}",
            "TIME_OFF_READ",
            Pagination("query", "page", "page-size", 200),
        ),
        (
            "getSharedReportsV1",
            "GET",
            "/v1/workspaces/{workspaceId}/shared-reports",
            "REPORTS_READ",
            Pagination("query", "page", "pageSize", None),
        ),
        (
            "generateDetailedReport",
            "POST",
            "/v1/workspaces/{workspaceId}/reports/detailed",
            "REPORTS_READ",
            Pagination("body", "detailedFilter.page", "detailedFilter.pageSize", None),
        ),
        (
            "getFilteredProjectTotals",
            "POST",
            "/v1/workspaces/{workspaceId}/scheduling/assignments/projects/totals",
            "SCHEDULING_READ",
            Pagination("body", "page", "pageSize", 200),
        ),
        (
            "generateSummaryReport",
            "POST",
            "/v1/workspaces/{workspaceId}/reports/summary",
            "REPORTS_READ",
            None,
        ),
        (
            "createTimeEntry",
            "POST",
            "/v1/workspaces/{workspaceId}/time-entries",
            "TIME_ENTRY_WRITE",
            None,
        ),
        (
            "deleteClient",
            "DELETE",
            "/v1/workspaces/{workspaceId}/clients/{id}",
            "CLIENT_WRITE",
            None,
        ),
        ("createWebhook", "POST", "/v1/workspaces/{workspaceId}/webhooks", "WORKSPACE_WRITE", None),
        (
            "getUserGroups",
            "GET",
            "/v1/workspaces/{workspaceId}/user-groups",
            "GROUP_READ",
            Pagination("query", "page", "page-size"),
        ),
        ("createHoliday", "POST", "/v1/workspaces/{workspaceId}/holidays", "TIME_OFF_WRITE", None),
        (
            "getCreatedEntityInfo",
            "GET",
            "/v1/workspaces/{workspaceId}/entities/created",
            None,
            None,
        ),
    ],
)
def test_known_operations_have_their_method_path_scope_and_paging(
    catalogue: Catalogue,
    operation_id: str,
    method: str,
    path: str,
    scope: str | None,
    pagination: Pagination | None,
) -> None:
    operation = catalogue.get(operation_id)
    assert (operation.method, operation.path, operation.scope) == (method, path, scope)
    assert operation.pagination == pagination


@pytest.mark.parametrize(
    ("operation_id", "writes"),
    [
        ("generateDetailedReport", False),
        ("generateAttendanceReport", False),
        ("generateDetailedReportV1", False),
        ("getInvoicesInfo", False),
        ("filterUsersOfWorkspace", False),
        ("getLogsForWebhook", False),
        ("getTimeOffRequest", False),
        ("saveSharedReportV1", True),
        ("duplicateInvoice", True),
        ("generateNewToken", True),
        ("getProjects", False),
        ("updateTag", True),
    ],
)
def test_searches_and_reports_sent_as_post_do_not_write(
    catalogue: Catalogue, operation_id: str, writes: bool
) -> None:
    operation = catalogue.get(operation_id)
    assert operation.writes is writes
    assert operation.scope is not None
    assert operation.scope.endswith("_WRITE" if writes else "_READ")


def test_every_scope_is_a_manifest_scope(catalogue: Catalogue, reference_dir: Path) -> None:
    schema = json.loads((reference_dir / "manifest-schema-1.6.json").read_text())
    valid = set(schema["definitions"]["scope"]["enum"])
    unscoped = {operation.tag for operation in catalogue if operation.scope is None}
    assert {operation.scope for operation in catalogue} - {None} <= valid
    assert unscoped == {"Entity changes (Experimental)"}


def test_path_placeholders_are_declared_path_parameters(catalogue: Catalogue) -> None:
    for operation in catalogue:
        placeholders = set(re.findall(r"\{([^}]+)\}", operation.path))
        declared = {p.name for p in operation.parameters if p.location == "path"}
        assert placeholders == declared, operation.operation_id
        assert all(p.required for p in operation.parameters if p.location == "path")


def test_body_schemas_are_valid_self_contained_json_schemas(catalogue: Catalogue) -> None:
    bodies = [operation for operation in catalogue if operation.body_schema is not None]
    assert len(bodies) == 89
    for operation in bodies:
        schema = operation.body_schema
        assert schema is not None
        Draft202012Validator.check_schema(schema)
        defs = schema.get("$defs", {})
        for definition in [schema, *defs.values()]:
            assert find_refs(definition) <= defs.keys(), operation.operation_id


def test_multipart_operations_record_their_media_type_without_a_json_schema(
    catalogue: Catalogue,
) -> None:
    upload = catalogue.get("uploadImage")
    assert upload.body_media_type == "multipart/form-data"
    assert upload.body_schema is None
    assert catalogue.validate("uploadImage", {}, {"file": "..."}) == []


def test_filter_matches_tag_method_and_text(catalogue: Catalogue) -> None:
    project_gets = catalogue.filter(tag="project", method="get")
    assert {op.operation_id for op in project_gets} == {"getProjects", "getProject"}
    assert {op.operation_id for op in catalogue.filter(text="IN-PROGRESS")} == {
        "getInProgressTimeEntries"
    }
    by_path = catalogue.filter(text="/invoices/")
    assert "deletePaymentById" in {op.operation_id for op in by_path}
    assert all("/invoices/" in op.path for op in by_path)
    assert catalogue.filter(text="no such thing") == []
    assert {"Time entry", "Time Off", "Shared Report", "Policy (Deprecated)"} <= set(
        catalogue.tags()
    )


def test_an_unknown_operation_suggests_close_ids(catalogue: Catalogue) -> None:
    with pytest.raises(UnknownOperationError, match="did you mean getProjects") as caught:
        catalogue.get("getProjcts")
    assert caught.value.status_code == 404
    assert caught.value.extra is not None
    assert "getProjects" in caught.value.extra["suggestions"]


# --- loading ------------------------------------------------------------------------------


def test_a_missing_document_raises_a_catalogue_error_saying_what_was_expected(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "openapi.json"
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(missing)
    assert str(missing) in caught.value.detail
    assert "expected Clockify's OpenAPI 3 document" in caught.value.detail
    assert caught.value.status_code == 503


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (b"<html>Not here</html>", "is not JSON"),
        (b'{"swagger": "2.0", "paths": {}}', "openapi: 3.x"),
        (b'{"openapi": "3.0.1", "info": {}}', "has no 'paths'"),
        (
            b'{"openapi": "3.0.1", "paths": {"/x": {"get": {"summary": "no id"}}}}',
            "GET /x has no operationId",
        ),
    ],
)
def test_a_document_that_is_not_openapi_is_refused(content: bytes, complaint: str) -> None:
    with pytest.raises(CatalogueError, match=re.escape(complaint)):
        parse_catalogue(content, source="upload")


def test_cyclic_schemas_stay_references_and_still_validate_deep_fields() -> None:
    node = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "child": {"$ref": "#/components/schemas/Node"}},
    }
    catalogue = parse_catalogue(tiny_document({"Node": node}, "#/components/schemas/Node"))
    schema = catalogue.get("createNode").body_schema
    assert schema is not None
    assert schema["$defs"]["Node"]["properties"]["child"] == {"$ref": "#/$defs/Node"}
    body = {"child": {"child": {"name": 5}}}
    assert catalogue.validate("createNode", {}, body) == [
        ValidationIssue("body.child.child.name", "expected string, got 5")
    ]


def test_openapi_schema_quirks_are_converted_for_json_schema() -> None:
    nullable = convert_schema({"type": "string", "enum": ["A"], "nullable": True, "example": "A"})
    assert nullable == {"type": ["string", "null"], "enum": ["A", None], "examples": ["A"]}
    exclusive = convert_schema({"type": "integer", "maximum": 5, "exclusiveMaximum": True})
    assert exclusive == {"type": "integer", "exclusiveMaximum": 5}
    assert convert_schema({"type": "object", "xml": {}, "discriminator": {}}) == {}
    enum_object = {
        "type": "object",
        "oneOf": [{"type": "string", "enum": ["DONE"]}],
        "properties": {"DONE": {"type": "string"}},
    }
    assert convert_schema(enum_object) == {"type": "string", "enum": ["DONE"]}
    enum_list = {**enum_object, "example": ["DONE"]}
    assert convert_schema(enum_list) == {
        "examples": [["DONE"]],
        "type": "array",
        "items": {"type": "string", "enum": ["DONE"]},
    }
    any_value = convert_schema({"type": "object", "description": "custom field value"})
    assert any_value == {"description": "custom field value"}
    with pytest.raises(ValueError, match="unsupported \\$ref"):
        convert_schema({"$ref": "other.json#/Thing"})


# --- validation ---------------------------------------------------------------------------


def test_a_valid_query_call_validates_clean_with_values_given_as_text(
    catalogue: Catalogue,
) -> None:
    params = {
        "workspaceId": WORKSPACE,
        "page": "2",
        "page-size": 50,
        "archived": "true",
        "client-status": "ACTIVE",
        "clients": ["5a0ab5acb07987125438b60f", "64c777ddd3fcab07cfbb210c"],
        "users": "5a0ab5acb07987125438b60f",
        "name": None,
    }
    assert catalogue.validate("getProjects", params) == []


def test_a_valid_body_validates_clean(catalogue: Catalogue) -> None:
    body = {
        "start": "2024-01-01T09:00:00Z",
        "description": "Planning",
        "tagIds": ["321r77ddd3fcab07cfbb567y"],
        "customFields": [{"customFieldId": "44a687e29ae1f428e7ebe305", "value": "Manila"}],
        "type": "REGULAR",
    }
    assert catalogue.validate("createTimeEntry", {"workspaceId": WORKSPACE}, body) == []


def test_a_missing_path_parameter_is_named(catalogue: Catalogue) -> None:
    issues = issues_of(catalogue, "getProject", {"workspaceId": WORKSPACE})
    assert issues == {"params.projectId": "required path parameter"}


def test_a_missing_required_query_parameter_is_named(catalogue: Catalogue) -> None:
    issues = issues_of(catalogue, "getCreatedEntityInfo", {"workspaceId": WORKSPACE})
    assert issues == {"params.type": "required query parameter"}


def test_a_value_outside_the_enum_lists_the_allowed_ones(catalogue: Catalogue) -> None:
    params = {"workspaceId": WORKSPACE, "client-status": "GONE"}
    issues = issues_of(catalogue, "getProjects", params)
    assert issues == {"params.client-status": "expected one of: ACTIVE, ARCHIVED, ALL; got 'GONE'"}


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"page": "abc"}, "params.page", "expected integer, got 'abc'"),
        ({"page": "2.5"}, "params.page", "expected integer, got '2.5'"),
        ({"page": True}, "params.page", "expected integer, got True"),
        ({"archived": "yes"}, "params.archived", "expected boolean, got 'yes'"),
        ({"page-size": "0"}, "params.page-size", "expected at least 1, got 0"),
        ({"clients": ["a", True]}, "params.clients[1]", "expected string, got True"),
    ],
)
def test_parameter_values_of_the_wrong_type_are_named(
    catalogue: Catalogue, params: dict[str, Any], field: str, message: str
) -> None:
    issues = issues_of(catalogue, "getProjects", {"workspaceId": WORKSPACE, **params})
    assert issues == {field: message}


def test_an_unknown_parameter_is_refused_with_the_known_ones(catalogue: Catalogue) -> None:
    issues = issues_of(catalogue, "getClient", {"workspaceId": WORKSPACE, "id": "c1", "colour": 1})
    assert issues == {"params.colour": "unknown parameter; known: id, workspaceId"}


def test_a_body_field_of_the_wrong_type_is_named(catalogue: Catalogue) -> None:
    issues = issues_of(catalogue, "createNewTag", {"workspaceId": WORKSPACE}, {"name": 5})
    assert issues == {"body.name": "expected string, got 5"}
    not_an_object = issues_of(catalogue, "createNewTag", {"workspaceId": WORKSPACE}, ["x"])
    assert not_an_object == {"body": "expected object, got ['x']"}


def test_nested_body_fields_are_named_by_their_path(catalogue: Catalogue) -> None:
    body = {
        "start": "2024-01-01T09:00:00Z",
        "tagIds": ["321r77ddd3fcab07cfbb567y", 7],
        "customFields": [{"customFieldId": "f1"}, {"value": "x"}],
        "type": "LUNCH",
    }
    issues = issues_of(catalogue, "createTimeEntry", {"workspaceId": WORKSPACE}, body)
    assert issues == {
        "body.tagIds[1]": "expected string, got 7",
        "body.customFields[1].customFieldId": "required property",
        "body.type": "expected one of: REGULAR, BREAK; got 'LUNCH'",
    }


def test_missing_required_body_properties_are_each_named(catalogue: Catalogue) -> None:
    body = {"dateRangeStart": "2024-01-01T00:00:00Z"}
    issues = issues_of(catalogue, "generateDetailedReport", {"workspaceId": WORKSPACE}, body)
    assert issues == {
        "body.dateRangeEnd": "required property",
        "body.detailedFilter": "required property",
    }


def test_springdoc_enum_objects_validate_as_their_string_values(catalogue: Catalogue) -> None:
    body = {
        "currency": "USD",
        "discountPercent": 0,
        "dueDate": "2024-02-01T00:00:00Z",
        "issuedDate": "2024-01-01T00:00:00Z",
        "number": "1",
        "tax2Percent": 0,
        "taxPercent": 0,
        "taxType": "SIMPLE",
    }
    params = {"workspaceId": WORKSPACE, "invoiceId": "i1"}
    assert catalogue.validate("updateInvoice", params, body) == []
    issues = issues_of(catalogue, "updateInvoice", params, {**body, "taxType": "FLAT"})
    assert issues == {"body.taxType": "expected one of: COMPOUND, SIMPLE, NONE; got 'FLAT'"}


def test_a_required_body_must_be_given_and_a_bodiless_operation_takes_none(
    catalogue: Catalogue,
) -> None:
    assert issues_of(catalogue, "createNewTag", {"workspaceId": WORKSPACE}) == {
        "body": "required request body"
    }
    assert issues_of(catalogue, "getTags", {"workspaceId": WORKSPACE}, {"name": "x"}) == {
        "body": "this operation takes no request body"
    }


def test_repeated_validation_gives_the_same_answer(catalogue: Catalogue) -> None:
    params = {"workspaceId": WORKSPACE, "page": "x"}
    first = catalogue.validate("getTags", params)
    assert first == catalogue.validate("getTags", params)
    assert [issue.field for issue in first] == ["params.page"]


# --- workspaceId --------------------------------------------------------------------------


def test_bind_fills_the_workspace_from_the_installation(catalogue: Catalogue) -> None:
    bound = catalogue.bind("getProject", {"projectId": "p1"}, WORKSPACE)
    assert bound == {"projectId": "p1", "workspaceId": WORKSPACE}
    assert catalogue.bind("getProject", bound, WORKSPACE) == bound
    assert catalogue.bind("getLoggedUser", {}, WORKSPACE) == {}


def test_another_workspace_cannot_be_named(catalogue: Catalogue) -> None:
    with pytest.raises(WorkspaceOverrideError, match="cannot be overridden") as caught:
        catalogue.bind("getProject", {"projectId": "p1", "workspaceId": "other"}, WORKSPACE)
    assert caught.value.status_code == 403
    issues = catalogue.validate(
        "getProject", {"projectId": "p1", "workspaceId": "other"}, workspace_id=WORKSPACE
    )
    assert [issue.field for issue in issues] == ["params.workspaceId"]
    assert "cannot be overridden" in issues[0].message


def test_the_installation_workspace_may_be_left_out_when_validating(catalogue: Catalogue) -> None:
    assert catalogue.validate("getProject", {"projectId": "p1"}, workspace_id=WORKSPACE) == []
    assert (
        catalogue.validate(
            "getProject", {"projectId": "p1", "workspaceId": WORKSPACE}, workspace_id=WORKSPACE
        )
        == []
    )


# --- URLs ---------------------------------------------------------------------------------


def test_urls_join_the_servers_base_url_path_and_query(catalogue: Catalogue) -> None:
    params = {
        "workspaceId": WORKSPACE,
        "page": 2,
        "archived": True,
        "clients": ["a", "b"],
        "name": "R&D 50%",
        "billable": None,
    }
    url = build_url(catalogue.get("getProjects"), params, BASE_URLS)
    assert url == (
        f"https://api.clockify.me/api/v1/workspaces/{WORKSPACE}/projects"
        "?name=R%26D%2050%25&archived=true&clients=a&clients=b&page=2"
    )
    report = build_url(
        catalogue.get("generateDetailedReport"), {"workspaceId": WORKSPACE}, BASE_URLS
    )
    assert report == f"https://reports.api.clockify.me/v1/workspaces/{WORKSPACE}/reports/detailed"


def test_path_values_are_percent_encoded_within_their_segment(catalogue: Catalogue) -> None:
    operation = catalogue.get("getProject")
    url = build_url(operation, {"workspaceId": WORKSPACE, "projectId": "../x/y?z#w"}, BASE_URLS)
    assert url.endswith(f"/workspaces/{WORKSPACE}/projects/..%2Fx%2Fy%3Fz%23w")


@pytest.mark.parametrize("value", ["..", ".", ""])
def test_dot_segments_and_empty_path_values_are_refused(catalogue: Catalogue, value: str) -> None:
    with pytest.raises(ParameterError, match="projectId"):
        build_url(
            catalogue.get("getProject"), {"workspaceId": WORKSPACE, "projectId": value}, BASE_URLS
        )


def test_a_url_needs_every_path_value_and_only_declared_parameters(catalogue: Catalogue) -> None:
    operation = catalogue.get("getProject")
    with pytest.raises(ParameterError, match="projectId is missing"):
        build_url(operation, {"workspaceId": WORKSPACE}, BASE_URLS)
    with pytest.raises(ParameterError, match="no parameter colour"):
        build_url(operation, {"workspaceId": WORKSPACE, "projectId": "p", "colour": 1}, BASE_URLS)


def test_time_off_operations_need_the_installations_time_off_url(catalogue: Catalogue) -> None:
    operation = catalogue.get("getPtoPolicy")
    params = {"workspaceId": WORKSPACE, "id": "p1"}
    with pytest.raises(BaseUrlError, match="no ptoUrl") as caught:
        build_url(operation, params, BASE_URLS)
    assert caught.value.status_code == 409
    url = build_url(operation, params, {**BASE_URLS, "ptoUrl": "https://pto.api.clockify.me/"})
    assert url == f"https://pto.api.clockify.me/v1/workspaces/{WORKSPACE}/policies/p1"


# --- download -----------------------------------------------------------------------------


def serving(status: int, content: bytes, seen: list[str] | None = None) -> httpx.Client:
    def answer(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(str(request.url))
        return httpx.Response(status, content=content)

    return httpx.Client(transport=httpx.MockTransport(answer))


def test_fetch_writes_the_document_where_asked(openapi_path: Path, tmp_path: Path) -> None:
    content = openapi_path.read_bytes()
    seen: list[str] = []
    dest = tmp_path / "data" / "openapi.json"
    with serving(200, content, seen) as client:
        assert fetch_openapi(DEFAULT_OPENAPI_URL, dest, client=client) == dest
    assert seen == [DEFAULT_OPENAPI_URL]
    assert dest.read_bytes() == content
    assert [path.name for path in dest.parent.iterdir()] == ["openapi.json"]
    assert len(load_catalogue(dest)) == 170


@pytest.mark.parametrize(
    ("status", "content"),
    [(200, b"<html>maintenance</html>"), (200, b'{"openapi": "3.0.1"}'), (404, b"not found")],
)
def test_fetch_refuses_what_is_not_openapi_and_keeps_the_old_file(
    tmp_path: Path, status: int, content: bytes
) -> None:
    dest = tmp_path / "openapi.json"
    dest.write_bytes(b"previous")
    with serving(status, content) as client, pytest.raises(CatalogueError):
        fetch_openapi("https://docs.example.com/openapi.json", dest, client=client)
    assert dest.read_bytes() == b"previous"
    assert [path.name for path in tmp_path.iterdir()] == ["openapi.json"]


def test_fetch_reports_a_transport_failure_as_a_catalogue_error(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    dest = tmp_path / "openapi.json"
    client = httpx.Client(transport=httpx.MockTransport(refuse))
    with client, pytest.raises(CatalogueError, match="could not download"):
        fetch_openapi(DEFAULT_OPENAPI_URL, dest, client=client)
    assert not dest.exists()


@pytest.mark.parametrize("form", ["path", "file-url", "url"])
def test_copy_takes_a_path_a_file_url_or_a_url(
    openapi_path: Path, tmp_path: Path, form: str
) -> None:
    dest = tmp_path / "data" / "clockify-openapi.json"
    content = openapi_path.read_bytes()
    sources = {
        "path": str(openapi_path),
        "file-url": openapi_path.as_uri(),
        "url": DEFAULT_OPENAPI_URL,
    }
    with serving(200, content) as client:
        assert copy_openapi(sources[form], dest, client=client) == dest
    assert dest.read_bytes() == content


@pytest.mark.parametrize("name", ["absent.json", "not-openapi.json"])
def test_copy_refuses_a_missing_or_foreign_file_and_keeps_the_old_one(
    tmp_path: Path, name: str
) -> None:
    (tmp_path / "not-openapi.json").write_text('{"swagger": "2.0"}')
    dest = tmp_path / "data" / "clockify-openapi.json"
    dest.parent.mkdir()
    dest.write_bytes(b"previous")
    with pytest.raises(CatalogueError, match=name):
        copy_openapi(str(tmp_path / name), dest)
    assert dest.read_bytes() == b"previous"
    assert [path.name for path in dest.parent.iterdir()] == ["clockify-openapi.json"]
