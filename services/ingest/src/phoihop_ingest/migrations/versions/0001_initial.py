"""Initial ingest schema: the idempotency table (kept when an earlier start created it).

Revision ID: 0001_ingest_initial
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_ingest_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table unless a release before migrations already did."""
    if sa.inspect(op.get_bind()).has_table("ingest_idempotency"):
        return
    op.create_table(
        "ingest_idempotency",
        sa.Column("agency", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("recommendation_id", sa.String(36), nullable=False),
        sa.Column("body_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("produced_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_table("ingest_idempotency")
