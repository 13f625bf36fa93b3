"""Which lists bootstrap fetches, how it pages them and how it reads their answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from addon_core.bootstrap.lists import (
    UNCAPPED_PAGE_SIZE,
    entity_key,
    select_listings,
    unwrap_items,
)
from addon_core.clockify.catalogue import Catalogue, load_catalogue
from tests.harness import BOOTSTRAP_LISTS


@pytest.fixture(scope="module")
def catalogue(reference_dir: Path) -> Catalogue:
    return load_catalogue(reference_dir / "openapi.json")


def test_the_default_lists_are_the_workspace_lists_of_the_regular_api(
    catalogue: Catalogue,
) -> None:
    listings = select_listings(catalogue)
    for described in listings:
        operation = described.operation
        print(operation.operation_id, operation.path, described.page_size, dict(described.params))
    assert [d.operation.operation_id for d in listings] == list(BOOTSTRAP_LISTS)
    for described in listings:
        assert described.operation.method == "GET"
        assert described.operation.server_kind == "regular"
        assert not described.operation.writes


def test_page_sizes_are_the_documented_caps_else_200(catalogue: Catalogue) -> None:
    sizes = {d.operation.operation_id: d.page_size for d in select_listings(catalogue)}
    assert sizes["getInProgressTimeEntries"] == 1000
    assert sizes["findPoliciesForWorkspace"] == 200
    assert sizes["getProjects"] == UNCAPPED_PAGE_SIZE


def test_a_required_parameter_with_a_default_is_sent_as_that_default(
    catalogue: Catalogue,
) -> None:
    [users] = [
        d for d in select_listings(catalogue) if d.operation.operation_id == "getUsersOfWorkspace"
    ]
    assert users.params == {"include-roles": "false"}


def test_include_adds_reports_and_time_off_lists_and_exclude_removes(
    catalogue: Catalogue,
) -> None:
    listings = select_listings(
        catalogue,
        include=["getSharedReportsV1", "findPtoPoliciesForWorkspace", "getWebhooks"],
        exclude=["getProjects", "getTags"],
    )
    chosen = [d.operation.operation_id for d in listings]
    assert "getProjects" not in chosen
    assert "getTags" not in chosen
    assert chosen[-3:] == ["getSharedReportsV1", "findPtoPoliciesForWorkspace", "getWebhooks"]
    webhooks = listings[-1]
    assert webhooks.page_size is None  # not paged: fetched in one request
    assert webhooks.noun == "webhooks"


def test_include_skips_unknown_operations_and_ones_that_are_not_lists(
    catalogue: Catalogue,
) -> None:
    listings = select_listings(
        catalogue, include=["getNothing", "getProject", "createNewTag", "getTimeEntries"]
    )
    assert [d.operation.operation_id for d in listings] == list(BOOTSTRAP_LISTS)


@pytest.mark.parametrize(
    ("body", "noun", "expected"),
    [
        ([{"id": "a"}], "projects", [{"id": "a"}]),
        (
            {"dailyTotals": [{"date": "x"}], "expenses": {"count": 1, "expenses": [{"id": "e"}]}},
            "expenses",
            [{"id": "e"}],
        ),
        ({"categories": [], "count": 0}, "categories", []),
        ({"total": 1, "invoices": [{"id": "i"}]}, "invoices", [{"id": "i"}]),
        ({"count": 1, "wrapped": {"rows": [{"id": "r"}]}}, "reports", [{"id": "r"}]),
        ({"count": 3}, "things", None),
        (None, "things", None),
    ],
)
def test_wrapped_answers_are_unwrapped_to_their_items(
    body: Any, noun: str, expected: list[Any] | None
) -> None:
    assert unwrap_items(body, noun) == expected


def test_an_item_is_keyed_by_its_id_or_its_first_object_s_id() -> None:
    assert entity_key({"id": "p1", "name": "P"}) == "p1"
    assert entity_key({"approvalRequest": {"id": "ar1"}, "entries": []}) == "ar1"
    assert entity_key({"name": "no id"}) is None
    assert entity_key("text") is None
