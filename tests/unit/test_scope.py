"""`scoped` keeps a query to one add-on's rows in one workspace."""

from __future__ import annotations

from sqlalchemy import and_, delete, select

from addon_core.storage.models import Event, Flow
from addon_core.storage.scope import scoped


def _sql(statement: object) -> str:
    return " ".join(str(statement).split())


def test_a_scoped_select_filters_on_the_addon_key_and_the_workspace() -> None:
    query = select(Flow.id).where(*scoped(Flow, "api-studio", "w1"))
    sql = _sql(query)
    assert "flows.addon_key = :addon_key_1 AND flows.workspace_id = :workspace_id_1" in sql
    params = query.compile().params
    assert params == {"addon_key_1": "api-studio", "workspace_id_1": "w1"}


def test_the_scope_can_join_on_another_table_s_columns() -> None:
    query = select(Flow.id).join(Event, and_(*scoped(Flow, Event.addon_key, Event.workspace_id)))
    assert "flows.addon_key = events.addon_key AND flows.workspace_id = events.workspace_id" in (
        _sql(query)
    )


def test_a_table_s_columns_can_be_scoped() -> None:
    table = Flow.__table__
    statement = delete(table).where(*scoped(table.c, "k", "w"))
    assert "WHERE flows.addon_key = :addon_key_1 AND flows.workspace_id = :workspace_id_1" in (
        _sql(statement)
    )
