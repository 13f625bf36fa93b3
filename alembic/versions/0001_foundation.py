"""Foundation: installations, webhook registrations, events, dedupe keys and the lifecycle audit.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-26 16:43:20.953712
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_dedupe",
        sa.Column("addon_key", sa.String(length=50), nullable=False),
        sa.Column("dedupe_key", sa.String(length=64), nullable=False),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("addon_key", "dedupe_key", name=op.f("pk_event_dedupe")),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("addon_key", sa.String(length=50), nullable=False),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("dedupe_key", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_received_at", ["received_at"], unique=False)
        batch_op.create_index("ix_events_scope", ["addon_key", "workspace_id", "id"], unique=False)

    op.create_table(
        "installations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("addon_key", sa.String(length=50), nullable=False),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("addon_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("auth_token", sa.Text(), nullable=True),
        sa.Column("api_urls", sa.JSON(), nullable=False),
        sa.Column("as_user", sa.String(length=64), nullable=True),
        sa.Column("addon_user_id", sa.String(length=64), nullable=True),
        sa.Column("owner_user_id", sa.String(length=64), nullable=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("lifecycle_issued_at", sa.Float(), nullable=True),
        sa.Column("status_issued_at", sa.Float(), nullable=True),
        sa.Column("settings_issued_at", sa.Float(), nullable=True),
        sa.Column("installed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installations")),
        sa.UniqueConstraint("addon_key", "workspace_id", name=op.f("uq_installations_addon_key")),
    )
    op.create_table(
        "lifecycle_audit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("addon_key", sa.String(length=50), nullable=False),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("addon_id", sa.String(length=64), nullable=True),
        sa.Column("lifecycle_type", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lifecycle_audit")),
    )
    with op.batch_alter_table("lifecycle_audit", schema=None) as batch_op:
        batch_op.create_index(
            "ix_lifecycle_audit_scope", ["addon_key", "workspace_id", "id"], unique=False
        )

    op.create_table(
        "webhook_registrations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "installation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("addon_key", sa.String(length=50), nullable=False),
        sa.Column("workspace_id", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("token_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("auth_token", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["installation_id"],
            ["installations.id"],
            name=op.f("fk_webhook_registrations_installation_id_installations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_registrations")),
        sa.UniqueConstraint(
            "addon_key", "workspace_id", "path", name=op.f("uq_webhook_registrations_addon_key")
        ),
    )
    with op.batch_alter_table("webhook_registrations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_registrations_installation_id"),
            ["installation_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_registrations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_registrations_installation_id"))

    op.drop_table("webhook_registrations")
    with op.batch_alter_table("lifecycle_audit", schema=None) as batch_op:
        batch_op.drop_index("ix_lifecycle_audit_scope")

    op.drop_table("lifecycle_audit")
    op.drop_table("installations")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_scope")
        batch_op.drop_index("ix_events_received_at")

    op.drop_table("events")
    op.drop_table("event_dedupe")
