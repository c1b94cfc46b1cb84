"""Subscriptions, consumed events, deliveries and the outcome outbox.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from phoihop_notify.models import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notify_subscriptions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("agency", sa.String(64), nullable=False, index=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("event_types", sa.JSON, nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("secret", sa.Text),
        sa.Column("previous_secret", sa.Text),
        sa.Column("previous_secret_expires_at", UtcDateTime()),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("disabled_reason", sa.Text),
        sa.Column("failing_since", UtcDateTime()),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("deleted_at", UtcDateTime()),
    )
    op.create_table(
        "notify_events",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("recommendation_id", sa.String(100), nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("processed_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_notify_events_rec_seq", "notify_events", ["recommendation_id", "sequence"])
    op.create_table(
        "notify_deliveries",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "event_id", sa.String(64), sa.ForeignKey("notify_events.event_id"), nullable=False
        ),
        sa.Column(
            "subscription_id",
            sa.String(64),
            sa.ForeignKey("notify_subscriptions.id"),
            nullable=False,
        ),
        sa.Column("recommendation_id", sa.String(100), nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("round_start", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("delivered_at", UtcDateTime()),
        sa.Column("failed_at", UtcDateTime()),
        sa.UniqueConstraint("subscription_id", "event_id", name="uq_notify_deliveries_sub_event"),
    )
    op.create_index("ix_notify_deliveries_due", "notify_deliveries", ["status", "next_attempt_at"])
    op.create_index(
        "ix_notify_deliveries_order",
        "notify_deliveries",
        ["subscription_id", "recommendation_id", "status"],
    )
    op.create_table(
        "notify_outbox",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("recommendation_id", sa.String(100), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("published_at", UtcDateTime()),
    )
    op.create_index("ix_notify_outbox_unpublished", "notify_outbox", ["published_at", "created_at"])


def downgrade() -> None:
    op.drop_table("notify_outbox")
    op.drop_table("notify_deliveries")
    op.drop_table("notify_events")
    op.drop_table("notify_subscriptions")
