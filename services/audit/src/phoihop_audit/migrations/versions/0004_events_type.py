"""An index on the stored events' type: corrections of duplicate decisions are read by type.

The period reports and the labelled pairs read the `merged`, `unmerged` and
`duplicate_dismissed` records of the whole log.

Revision ID: 0004_audit_events_type
Revises: 0003_audit_source_ref
"""

from alembic import op

revision = "0004_audit_events_type"
down_revision = "0003_audit_source_ref"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the index."""
    op.create_index("ix_audit_events_type", "audit_events", ["type"])


def downgrade() -> None:
    """Drop the index."""
    op.drop_index("ix_audit_events_type", table_name="audit_events")
