"""Seeding: the subscriptions and contacts of `subscriptions.yaml` as rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from phoihop_notify.config import EMAIL_EVENT_TYPES, SubscriptionsFile, email_subscription_id
from phoihop_notify.matching import Scope
from phoihop_notify.models import subscriptions
from phoihop_notify.store.base import retire

SEED_ATTEMPTS = 3


def seed(engine: Engine, *, config: SubscriptionsFile, now: datetime) -> int:
    """Upsert config subscriptions and contacts; retire config rows no longer in the file.

    Replicas starting together seed the same rows at the same moment: the one whose insert
    of a row the other just committed fails on its key, and seeds again (updates then).
    """
    rows: list[dict[str, Any]] = [
        {
            "id": s.key,
            "agency": s.agency,
            "channel": "webhook",
            "target": s.url,
            "event_types": list(s.event_types),
            "scope": s.scope.value,
            "description": s.description,
            "secret": s.secret,
        }
        for s in config.subscriptions
    ]
    rows += [
        {
            "id": email_subscription_id(agency),
            "agency": agency,
            "channel": "email",
            "target": ",".join(emails),
            "event_types": list(EMAIL_EVENT_TYPES),
            "scope": Scope.ADDRESSED.value,
            "description": "agency contacts (config)",
            "secret": None,
        }
        for agency, emails in config.contacts.items()
        if emails
    ]
    for attempt in range(1, SEED_ATTEMPTS + 1):
        try:
            with engine.begin() as conn:
                _upsert(conn, rows, now=now)
            break
        except IntegrityError:
            if attempt == SEED_ATTEMPTS:
                raise
    return len(rows)


def _upsert(conn: Connection, rows: list[dict[str, Any]], *, now: datetime) -> None:
    """One attempt, in the caller's transaction."""
    existing = {
        r.id: r
        for r in conn.execute(
            select(subscriptions.c.id, subscriptions.c.deleted_at).where(
                subscriptions.c.source == "config"
            )
        )
    }
    for row in rows:
        if row["id"] in existing:
            conn.execute(
                update(subscriptions)
                .where(subscriptions.c.id == row["id"])
                .values(**row, updated_at=now, deleted_at=None)
            )
        else:
            conn.execute(
                insert(subscriptions).values(
                    **row,
                    enabled=True,
                    source="config",
                    created_at=now,
                    updated_at=now,
                )
            )
    gone = set(existing) - {r["id"] for r in rows}
    for sub_id in gone:
        retire(conn, subscription_id=sub_id, now=now)
