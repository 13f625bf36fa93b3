"""The workspace scope of a query: rows of one add-on in one workspace.

Every table holding a workspace's data carries `addon_key` and `workspace_id` (both
apps share one database), so almost every query starts from this filter.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, SQLColumnExpression


def scoped(
    model: Any,
    addon_key: str | SQLColumnExpression[str],
    workspace_id: str | SQLColumnExpression[str],
) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """The where-clauses keeping `model`'s rows of one add-on in one workspace.

    `model` is a mapped class, an alias of one or a table's columns (`table.c`); the
    key and workspace may be values or columns (to join on the scope):
    `select(Flow).where(*scoped(Flow, runtime.addon_key, workspace_id))`.
    """
    return (model.addon_key == addon_key, model.workspace_id == workspace_id)
