"""Tables of the notify service (all prefixed `notify_`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

subscriptions = Table(
    "notify_subscriptions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("agency", String(64), nullable=False, index=True),
    Column("channel", String(16), nullable=False),  # webhook | email
    Column("target", Text, nullable=False),  # URL, or comma-separated email addresses
    Column("event_types", JSON, nullable=False),  # [] = every event type
    Column("scope", String(16), nullable=False),  # addressed | jurisdiction
    Column("description", Text),
    Column("secret", Text),
    Column("previous_secret", Text),
    Column("previous_secret_expires_at", UtcDateTime()),
    Column("enabled", Boolean, nullable=False),
    Column("disabled_reason", Text),
    Column("failing_since", UtcDateTime()),
    Column("source", String(16), nullable=False),  # config | api
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("deleted_at", UtcDateTime()),
)

# One row per consumed lifecycle event: the processed-event record and the payload to send.
events = Table(
    "notify_events",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("event_type", String(32), nullable=False),
    Column("recommendation_id", String(100), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("attributes", JSON, nullable=False),  # CloudEvents attributes
    Column("data", JSON, nullable=False),
    Column("processed_at", UtcDateTime(), nullable=False),
    Index("ix_notify_events_rec_seq", "recommendation_id", "sequence"),
)

deliveries = Table(
    "notify_deliveries",
    metadata,
    Column("id", String(64), primary_key=True),  # = webhook-id, stable across retries
    Column("event_id", String(64), ForeignKey("notify_events.event_id"), nullable=False),
    Column("subscription_id", String(64), ForeignKey("notify_subscriptions.id"), nullable=False),
    Column("recommendation_id", String(100), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False),
    Column("round_start", Integer, nullable=False),  # attempts made before the last replay
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("delivered_at", UtcDateTime()),
    Column("failed_at", UtcDateTime()),
    UniqueConstraint("subscription_id", "event_id", name="uq_notify_deliveries_sub_event"),
    Index("ix_notify_deliveries_due", "status", "next_attempt_at"),
    Index("ix_notify_deliveries_order", "subscription_id", "recommendation_id", "status"),
)

# Outcome events waiting to be published (written in the attempt's transaction).
outbox = Table(
    "notify_outbox",
    metadata,
    Column("id", String(64), primary_key=True),  # the outcome's event id
    Column("recommendation_id", String(100), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("published_at", UtcDateTime()),
    Index("ix_notify_outbox_unpublished", "published_at", "created_at"),
)
