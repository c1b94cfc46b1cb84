"""Intake: consumed lifecycle events recorded with the deliveries they match."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from phoihop_notify.matching import Filter, Scope, matching
from phoihop_notify.models import deliveries, events, subscriptions
from phoihop_notify.store.base import PENDING, delivery_id


@dataclass(frozen=True)
class Consumed:
    """One decoded lifecycle event, ready to be recorded."""

    event_id: str
    event_type: str
    recommendation_id: str
    sequence: int
    attributes: dict[str, Any]
    data: dict[str, Any]
    addressees: frozenset[str]


# Hot-path statements are built once: building one and computing its cache key on every
# call cost more CPU than executing it (the profile of issue 13).
_FILTERS = select(
    subscriptions.c.id,
    subscriptions.c.agency,
    subscriptions.c.scope,
    subscriptions.c.event_types,
).where(subscriptions.c.deleted_at.is_(None))
_INSERT_EVENTS = insert(events)
_INSERT_DELIVERIES = insert(deliveries)
_KNOWN_EVENTS = select(events.c.event_id).where(
    events.c.event_id.in_(bindparam("ids", expanding=True))
)


def active_filters(conn: Connection) -> list[Filter]:
    """Filters of every enabled or disabled (but not deleted) subscription."""
    rows = conn.execute(_FILTERS)
    return [
        Filter(
            subscription_id=r.id,
            agency=r.agency,
            scope=Scope(r.scope),
            event_types=frozenset(r.event_types or ()),
        )
        for r in rows
    ]


def _record(conn: Connection, items: Sequence[Consumed], *, now: datetime) -> int:
    if not items:
        return 0
    filters = active_filters(conn)
    conn.execute(
        _INSERT_EVENTS,
        [
            {
                "event_id": item.event_id,
                "event_type": item.event_type,
                "recommendation_id": item.recommendation_id,
                "sequence": item.sequence,
                "attributes": item.attributes,
                "data": item.data,
                "processed_at": now,
            }
            for item in items
        ],
    )
    rows = [
        {
            "id": delivery_id(event_id=item.event_id, subscription_id=f.subscription_id),
            "event_id": item.event_id,
            "subscription_id": f.subscription_id,
            "recommendation_id": item.recommendation_id,
            "sequence": item.sequence,
            "status": PENDING,
            "attempts": 0,
            "round_start": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for item in items
        for f in matching(filters, event_type=item.event_type, addressees=item.addressees)
    ]
    if rows:
        conn.execute(_INSERT_DELIVERIES, rows)
    return len(rows)


def record_events(engine: Engine, *, items: Sequence[Consumed], now: datetime) -> int:
    """Record events as processed with their deliveries, in one transaction; skip known ones."""
    unique: dict[str, Consumed] = {}
    for item in items:
        unique.setdefault(item.event_id, item)
    if not unique:
        return 0
    try:
        with engine.begin() as conn:
            known = set(conn.scalars(_KNOWN_EVENTS, {"ids": list(unique)}))
            return _record(conn, [i for k, i in unique.items() if k not in known], now=now)
    except IntegrityError:
        # Another consumer recorded some of these meanwhile: go one by one, and only skip
        # an event when its processed record proves it is a duplicate.
        created = 0
        for item in unique.values():
            try:
                with engine.begin() as conn:
                    created += _record(conn, [item], now=now)
            except IntegrityError:
                with engine.connect() as conn:
                    if (
                        conn.scalar(
                            select(events.c.event_id).where(events.c.event_id == item.event_id)
                        )
                        is None
                    ):
                        raise
        return created
