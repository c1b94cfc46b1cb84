"""Initial audit schema: append-only event log, log head, checkpoints, read model.

Revision ID: 0001_audit_initial
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_audit_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the tables."""
    op.create_table(
        "audit_log_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(
        sa.table("audit_log_head", sa.column("id"), sa.column("size"), sa.column("head_hash")),
        [{"id": 1, "size": 0, "head_hash": "0" * 64}],
    )
    op.create_table(
        "audit_events",
        sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(100), nullable=False, unique=True),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("recommendation_id", sa.String(100), nullable=False),
        sa.Column("sequence", sa.Integer, nullable=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("event_time", sa.String(40), nullable=True),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("reporter_enc", sa.Text, nullable=True),
        sa.Column("content_digest", sa.String(64), nullable=False),
        sa.Column("stored_at", sa.String(40), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("leaf_hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_events_rec_seq", "audit_events", ["recommendation_id", "sequence"])
    op.create_table(
        "audit_checkpoints",
        sa.Column("tree_size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
    )
    op.create_table(
        "audit_recommendations",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("status", sa.String(20), nullable=True),
        sa.Column("kind", sa.String(20), nullable=True),
        sa.Column("channel", sa.String(30), nullable=True),
        sa.Column("locality", sa.String(64), nullable=True),
        sa.Column("category", sa.String(64), nullable=True),
        sa.Column("level", sa.String(20), nullable=True),
        sa.Column("agency", sa.String(64), nullable=True),
        sa.Column("submitted_by", sa.String(64), nullable=True),
        sa.Column("text", sa.Text, nullable=True),
        sa.Column("text_folded", sa.Text, nullable=True),
        sa.Column("received_at", sa.DateTime, nullable=True),
        sa.Column("first_assigned_at", sa.DateTime, nullable=True),
        sa.Column("deadline", sa.DateTime, nullable=True),
        sa.Column("duplicate_of", sa.String(100), nullable=True),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("escalation_level", sa.Integer, nullable=False),
        sa.Column("answered_at", sa.DateTime, nullable=True),
        sa.Column("answered_on_time", sa.Boolean, nullable=True),
        sa.Column("answer_days", sa.Float, nullable=True),
        sa.Column("closed_at", sa.DateTime, nullable=True),
        sa.Column("has_gap", sa.Boolean, nullable=False),
    )
    op.create_index("ix_audit_recommendations_agency", "audit_recommendations", ["agency"])
    op.create_index(
        "ix_audit_recommendations_received_at", "audit_recommendations", ["received_at"]
    )
    op.create_index(
        "ix_audit_recommendations_duplicate_of", "audit_recommendations", ["duplicate_of"]
    )
    op.create_table(
        "audit_involvement",
        sa.Column("recommendation_id", sa.String(100), primary_key=True),
        sa.Column("agency", sa.String(64), primary_key=True),
        sa.Column("relation", sa.String(20), primary_key=True),
        sa.Column("via", sa.String(100), primary_key=True),
    )
    op.create_index("ix_audit_involvement_agency", "audit_involvement", ["agency"])


def downgrade() -> None:
    """Drop the tables."""
    for name in (
        "audit_involvement",
        "audit_recommendations",
        "audit_checkpoints",
        "audit_events",
        "audit_log_head",
    ):
        op.drop_table(name)
