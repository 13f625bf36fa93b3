"""The database tables. Every row is scoped by add-on key and workspace, so both apps
can share one database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Installation(Base):
    """One add-on installed on one workspace; kept as a token-less tombstone after DELETED."""

    __tablename__ = "installations"
    __table_args__ = (UniqueConstraint("addon_key", "workspace_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    addon_key: Mapped[str] = mapped_column(String(50))
    workspace_id: Mapped[str] = mapped_column(String(64))
    #: Clockify's id of this installation (`addonId`); a reinstall may bring a new one.
    addon_id: Mapped[str] = mapped_column(String(64))
    #: ACTIVE, INACTIVE or DELETED
    status: Mapped[str] = mapped_column(String(16))
    #: the installation token, encrypted; NULL once DELETED
    auth_token: Mapped[str | None] = mapped_column(Text)
    #: apiUrl from the payload and the base-URL claims of the installation token
    api_urls: Mapped[dict[str, Any]] = mapped_column(default=dict)
    as_user: Mapped[str | None] = mapped_column(String(64))
    addon_user_id: Mapped[str | None] = mapped_column(String(64))
    owner_user_id: Mapped[str | None] = mapped_column(String(64))
    #: the latest SETTINGS_UPDATED list of {id, name, value}
    settings: Mapped[list[Any]] = mapped_column(default=list)
    #: issue times (`iat`) of the newest INSTALLED/DELETED, STATUS_CHANGED and
    #: SETTINGS_UPDATED applied: a call older than what it would change is stale
    lifecycle_issued_at: Mapped[float | None] = mapped_column(Float)
    status_issued_at: Mapped[float | None] = mapped_column(Float)
    settings_issued_at: Mapped[float | None] = mapped_column(Float)
    installed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookRegistration(Base):
    """A webhook Clockify will call for an installation, with the token it will sign with."""

    __tablename__ = "webhook_registrations"
    __table_args__ = (UniqueConstraint("addon_key", "workspace_id", "path"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    installation_id: Mapped[int] = mapped_column(
        ForeignKey("installations.id", ondelete="CASCADE"), index=True
    )
    addon_key: Mapped[str] = mapped_column(String(50))
    workspace_id: Mapped[str] = mapped_column(String(64))
    #: the path relative to baseUrl, as the manifest declares it
    path: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(64))
    #: `manifest`, or `api` for webhooks registered through the workspace webhooks API
    source: Mapped[str] = mapped_column(String(16), default="manifest")
    #: SHA-256 of the token: deliveries are compared against it in constant time
    token_digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    #: the token itself, encrypted
    auth_token: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Event(Base):
    """One accepted webhook delivery, stored before it is acknowledged."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_scope", "addon_key", "workspace_id", "id"),
        Index("ix_events_received_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    addon_key: Mapped[str] = mapped_column(String(50))
    workspace_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    #: `clockify` (manifest or API-registered webhook) or `custom`
    source: Mapped[str] = mapped_column(String(16))
    #: SHA-256 over workspace, event type and the exact body (Clockify sends no event id)
    dedupe_key: Mapped[str] = mapped_column(String(64))
    #: the body exactly as received
    payload: Mapped[str] = mapped_column(Text)
    #: the request headers minus credentials, as a JSON object
    headers: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EventDedupe(Base):
    """The dedupe keys of accepted deliveries, with when each was last accepted.

    A delivery whose key was accepted within the dedupe window is a redelivery.
    """

    __tablename__ = "event_dedupe"

    addon_key: Mapped[str] = mapped_column(String(50), primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64))
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LifecycleAudit(Base):
    """Every lifecycle call that passed verification, and what it did."""

    __tablename__ = "lifecycle_audit"
    __table_args__ = (Index("ix_lifecycle_audit_scope", "addon_key", "workspace_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    addon_key: Mapped[str] = mapped_column(String(50))
    workspace_id: Mapped[str] = mapped_column(String(64))
    addon_id: Mapped[str | None] = mapped_column(String(64))
    lifecycle_type: Mapped[str] = mapped_column(String(32))
    #: applied, stale (older than the state it would change) or ignored
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
