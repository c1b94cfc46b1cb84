"""The submitter's `source_ref` in the read model, so a submitter can find its case by it.

The column is filled from each recommendation's stored `received` event (its data holds
the `source_ref` the submission carried).

Revision ID: 0003_audit_source_ref
Revises: 0002_audit_access_relations
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0003_audit_source_ref"
down_revision = "0002_audit_access_relations"
branch_labels = None
depends_on = None

BATCH = 1000


def upgrade() -> None:
    """Add the column and its index, then fill it from the stored `received` events."""
    op.add_column("audit_recommendations", sa.Column("source_ref", sa.String(200), nullable=True))
    op.create_index("ix_audit_recommendations_source_ref", "audit_recommendations", ["source_ref"])
    conn = op.get_bind()
    events = sa.table(
        "audit_events",
        sa.column("recommendation_id", sa.String),
        sa.column("type", sa.String),
        sa.column("data", sa.Text),
        sa.column("position", sa.BigInteger),
    )
    recommendations = sa.table(
        "audit_recommendations", sa.column("id", sa.String), sa.column("source_ref", sa.String)
    )
    update = (
        sa.update(recommendations)
        .where(recommendations.c.id == sa.bindparam("rec"))
        .values(source_ref=sa.bindparam("ref"))
    )
    after = -1
    while True:  # a page of `received` events at a time, by log position
        page = conn.execute(
            sa.select(events.c.position, events.c.recommendation_id, events.c.data)
            .where(events.c.type == "received", events.c.position > after)
            .order_by(events.c.position)
            .limit(BATCH)
        ).all()
        if not page:
            break
        after = page[-1].position
        found = [
            {"rec": row.recommendation_id, "ref": ref[:200]}
            for row in page
            if (ref := _source_ref(row.data))
        ]
        if found:
            conn.execute(update, found)


def _source_ref(data: str) -> str | None:
    try:
        ref = json.loads(data).get("source_ref")
    except (ValueError, AttributeError):
        return None
    return ref if isinstance(ref, str) and ref else None


def downgrade() -> None:
    """Drop the index and the column."""
    op.drop_index("ix_audit_recommendations_source_ref", table_name="audit_recommendations")
    with op.batch_alter_table("audit_recommendations") as batch:
        batch.drop_column("source_ref")
