"""Involvement rows named after the access policy's case relations.

`submitted` becomes `submitter`; `assigned` (every agency ever assigned) becomes `assignee`
for the body settling the case now and `past_assignee` for the others. `source` rows stay:
they are facts, and the policy now grants a source nothing on the case it was merged into.

Revision ID: 0002_audit_access_relations
Revises: 0001_audit_initial
"""

from alembic import op

revision = "0002_audit_access_relations"
down_revision = "0001_audit_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Rename the relations."""
    op.execute("UPDATE audit_involvement SET relation = 'submitter' WHERE relation = 'submitted'")
    op.execute(
        "UPDATE audit_involvement SET relation = 'past_assignee' WHERE relation = 'assigned'"
    )
    op.execute(
        "UPDATE audit_involvement SET relation = 'assignee' "
        "WHERE relation = 'past_assignee' AND EXISTS ("
        " SELECT 1 FROM audit_recommendations r"
        " WHERE r.id = audit_involvement.recommendation_id"
        " AND r.agency = audit_involvement.agency"
        " AND (r.status IS NULL OR r.status <> 'declined'))"
    )


def downgrade() -> None:
    """Back to the old names."""
    op.execute("UPDATE audit_involvement SET relation = 'submitted' WHERE relation = 'submitter'")
    op.execute(
        "UPDATE audit_involvement SET relation = 'assigned' "
        "WHERE relation IN ('assignee', 'past_assignee')"
    )
