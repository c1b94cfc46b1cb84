"""The outbox: outcome events waiting to be published, and their acknowledgement."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Integer, bindparam, select, update

from phoihop_notify.models import outbox

_UNPUBLISHED = (
    select(outbox.c.id, outbox.c.payload)
    .where(outbox.c.published_at.is_(None))
    .order_by(outbox.c.created_at)
    .limit(bindparam("limit", type_=Integer()))
)
_MARK_PUBLISHED = (
    update(outbox)
    .where(outbox.c.id.in_(bindparam("ids", expanding=True)))
    .values(published_at=bindparam("now", type_=outbox.c.published_at.type))
)


def unpublished(engine: Engine, *, limit: int) -> list[tuple[str, dict[str, Any]]]:
    """Outcome events not yet on the broker, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(_UNPUBLISHED, {"limit": limit})
        return [(r.id, dict(r.payload)) for r in rows]


def mark_published(engine: Engine, *, ids: Iterable[str], now: datetime) -> None:
    """Mark outcome events as acknowledged by the broker."""
    ids = list(ids)
    if ids:
        with engine.begin() as conn:
            conn.execute(_MARK_PUBLISHED, {"ids": ids, "now": now})
