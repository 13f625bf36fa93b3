"""The OpenAPI document each app serves: valid, complete for /api/, with the user token scheme."""

from __future__ import annotations

from collections.abc import Callable

from jsonschema import Draft202012Validator
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient
from openapi_spec_validator import validate

from addon_core.web.api_docs import OPERATIONS

METHODS = {"get", "post", "put", "patch", "delete"}


def api_operations(app: Litestar) -> set[tuple[str, str]]:
    """Every /api/ route of the app as (path template, method)."""
    return {
        (route.path_format, method.lower())
        for route in app.routes
        if isinstance(route, HTTPRoute) and route.path_format.startswith("/api/")
        for method in route.route_handler_map
        if method not in ("HEAD", "OPTIONS")
        # Server-Sent Events do not fit an OpenAPI answer: docs/api.md describes the stream.
        and route.path_format != "/api/events/stream"
    }


async def test_the_document_is_valid_and_lists_every_api_route(
    make_app: Callable[..., Litestar], app_name: str
) -> None:
    app = make_app(app_name)
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    document = response.json()
    validate(document)
    listed = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }
    assert listed == api_operations(app)
    assert all(path.startswith("/api/") for path, _ in listed)


async def test_every_operation_is_described_with_bodies_errors_and_the_bearer_scheme(
    make_app: Callable[..., Litestar], app_name: str
) -> None:
    async with AsyncTestClient(app=make_app(app_name)) as client:
        document = (await client.get("/schema/openapi.json")).json()
    scheme = document["components"]["securitySchemes"]["userToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert document["security"] == [{"userToken": []}]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            assert operation["summary"], where
            assert operation["tags"], where
            assert {"401", "403", "404"} <= set(operation["responses"]), where
            error = operation["responses"]["401"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/ErrorBody"}, where
            success = [code for code in operation["responses"] if code.startswith("2")]
            assert len(success) == 1, where
    create = document["paths"]["/api/flows"]["post"]
    body = create["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/FlowDocument"}
    assert body["example"]["trigger"] == {"source": "clockify", "events": ["NEW_TIME_ENTRY"]}
    page = create["responses"]["201"]["content"]["application/json"]["schema"]
    assert page == {"$ref": "#/components/schemas/Flow"}


async def test_every_example_fits_its_schema(make_app: Callable[..., Litestar]) -> None:
    async with AsyncTestClient(app=make_app("universal-webhook")) as client:
        document = (await client.get("/schema/openapi.json")).json()
    components = document["components"]
    checked = 0
    for name, schema in components["schemas"].items():
        validator = Draft202012Validator(
            {"$ref": f"#/components/schemas/{name}", "components": components}
        )
        for example in schema.get("examples", []):
            validator.validate(example)
            checked += 1
    for item in document["paths"].values():
        for operation in item.values():
            media = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if media and "example" in media:
                Draft202012Validator({**media["schema"], "components": components}).validate(
                    media["example"]
                )
                checked += 1
    assert checked >= 8


async def test_schema_root_serves_the_same_document(make_app: Callable[..., Litestar]) -> None:
    async with AsyncTestClient(app=make_app("api-studio")) as client:
        root = await client.get("/schema")
        document = await client.get("/schema/openapi.json")
    assert root.status_code == 200
    assert root.json() == document.json()
    assert "/api/coverage" not in document.json()["paths"]  # Universal Webhook only


def test_every_described_operation_names_a_real_handler(make_app: Callable[..., Litestar]) -> None:
    names = {
        handler.name
        for app_name in ("api-studio", "universal-webhook")
        for route in make_app(app_name).routes
        if isinstance(route, HTTPRoute)
        for handler, _ in route.route_handler_map.values()
    }
    assert set(OPERATIONS) <= names
