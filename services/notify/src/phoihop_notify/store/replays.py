"""Deliveries as agencies see them through the API, and their replays (dead letters)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, select, update

from phoihop_notify.exceptions import NotFoundError
from phoihop_notify.models import deliveries, events, subscriptions
from phoihop_notify.store.base import FAILED, PENDING


def list_deliveries(
    engine: Engine,
    *,
    agency: str,
    status: str | None,
    since: datetime | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The agency's deliveries, newest first."""
    d = deliveries
    query = (
        select(d, events.c.event_type)
        .join(subscriptions, subscriptions.c.id == d.c.subscription_id)
        .join(events, events.c.event_id == d.c.event_id)
        .where(subscriptions.c.agency == agency)
        .order_by(d.c.updated_at.desc())
        .limit(limit)
    )
    if status:
        query = query.where(d.c.status == status)
    if since:
        query = query.where(d.c.updated_at >= since)
    with engine.connect() as conn:
        return [_delivery(r) for r in conn.execute(query)]


def replay_one(engine: Engine, *, agency: str, delivery_id: str, now: datetime) -> dict[str, Any]:
    """Schedule a delivered or dead-lettered message again, now, with a fresh retry round."""
    owned = (
        select(deliveries.c.id)
        .join(subscriptions, subscriptions.c.id == deliveries.c.subscription_id)
        .where(deliveries.c.id == delivery_id, subscriptions.c.agency == agency)
    )
    with engine.begin() as conn:
        if conn.scalar(owned) is None:
            raise NotFoundError(f"no delivery {delivery_id}")
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id == delivery_id, deliveries.c.status != PENDING)
            .values(
                status=PENDING,
                round_start=deliveries.c.attempts,
                next_attempt_at=now,
                failed_at=None,
                updated_at=now,
            )
        )
    return {"id": delivery_id, "status": PENDING}


def replay_failed_since(engine: Engine, *, agency: str, since: datetime, now: datetime) -> int:
    """Schedule again every dead-lettered message of the agency that failed since `since`."""
    mine = select(subscriptions.c.id).where(subscriptions.c.agency == agency)
    with engine.begin() as conn:
        result = conn.execute(
            update(deliveries)
            .where(
                deliveries.c.status == FAILED,
                deliveries.c.failed_at >= since,
                deliveries.c.subscription_id.in_(mine),
            )
            .values(
                status=PENDING,
                round_start=deliveries.c.attempts,
                next_attempt_at=now,
                failed_at=None,
                updated_at=now,
            )
        )
        return int(result.rowcount)


def _delivery(r: Row[Any]) -> dict[str, Any]:
    return {
        "id": r.id,
        "event_id": r.event_id,
        "event_type": r.event_type,
        "subscription_id": r.subscription_id,
        "recommendation_id": r.recommendation_id,
        "sequence": r.sequence,
        "status": r.status,
        "attempts": r.attempts,
        "next_attempt_at": r.next_attempt_at if r.status == PENDING else None,
        "last_status_code": r.last_status_code,
        "last_error": r.last_error,
        "created_at": r.created_at,
        "delivered_at": r.delivered_at,
        "failed_at": r.failed_at,
    }
