"""Properties of the operation catalogue: any call is judged, never crashes; paths stay put."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from addon_core.clockify.catalogue import Catalogue, ParameterError, build_url, load_catalogue
from addon_core.clockify.openapi_schema import ValidationIssue
from tests.property.strategies import json_values

BASE_URLS = {
    "backendUrl": "https://api.clockify.me/api",
    "reportsUrl": "https://reports.api.clockify.me",
    "ptoUrl": "https://pto.api.clockify.me",
}
WORKSPACE = "64a687e29ae1f428e7ebe303"

param_values = st.one_of(
    json_values,
    st.integers().map(str),
    st.text(alphabet="0123456789", min_size=4290, max_size=4400),
    st.text(alphabet="/.?#%&=", max_size=6),
)


@pytest.fixture(scope="module")
def catalogue(reference_dir: Path) -> Catalogue:
    return load_catalogue(reference_dir / "openapi.json")


@given(data=st.data())
def test_any_params_and_body_for_any_operation_give_issues_never_an_exception(
    catalogue: Catalogue, data: st.DataObject
) -> None:
    operation = data.draw(st.sampled_from(sorted(op.operation_id for op in catalogue)))
    names = [parameter.name for parameter in catalogue.get(operation).parameters]
    params = data.draw(
        st.dictionaries(st.sampled_from([*names, "unknownName"]), param_values, max_size=5)
    )
    body = data.draw(st.none() | json_values)
    issues = catalogue.validate(operation, params, body, workspace_id=WORKSPACE)
    assert all(isinstance(issue, ValidationIssue) and issue.message for issue in issues)
    assert len({issue.field for issue in issues}) >= min(len(issues), 1)


@given(data=st.data())
def test_path_values_never_leave_their_segment(catalogue: Catalogue, data: st.DataObject) -> None:
    with_paths = sorted(
        op.operation_id
        for op in catalogue
        if any(parameter.location == "path" for parameter in op.parameters)
    )
    operation = catalogue.get(data.draw(st.sampled_from(with_paths)))
    params = {
        parameter.name: data.draw(st.text(min_size=1, max_size=12) | st.integers())
        for parameter in operation.parameters
        if parameter.location == "path"
    }
    try:
        url = catalogue_url(catalogue, operation.operation_id, params)
    except ParameterError as exc:
        assert exc.detail  # noqa: PT017 - an empty, "." or ".." value is named
        return
    base = next(value for value in BASE_URLS.values() if url.startswith(value))
    # The same number of segments as the declared path: no value added or removed one.
    path = urlsplit(url).path.removeprefix(urlsplit(base).path)
    assert path.count("/") == operation.path.count("/")
    assert "?" not in url
    assert "#" not in url


@given(data=st.data())
def test_integer_parameters_given_as_any_digit_text_are_judged(
    catalogue: Catalogue, data: st.DataObject
) -> None:
    integers = sorted(
        (op.operation_id, parameter.name)
        for op in catalogue
        for parameter in op.parameters
        if parameter.schema.get("type") == "integer"
    )
    operation, name = data.draw(st.sampled_from(integers))
    digits = data.draw(st.integers(min_value=1, max_value=6000))
    issues = catalogue.validate(operation, {name: "9" * digits}, None, workspace_id=WORKSPACE)
    # Past the bound the text is not read as a number: it is refused with a message.
    assert digits <= 300 or any(issue.field == f"params.{name}" for issue in issues)


def catalogue_url(catalogue: Catalogue, operation_id: str, params: dict[str, Any]) -> str:
    return build_url(catalogue.get(operation_id), params, BASE_URLS)
