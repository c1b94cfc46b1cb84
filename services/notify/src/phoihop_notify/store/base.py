"""What every part of the store shares: delivery statuses, the engine, ids and secrets."""

from __future__ import annotations

import base64
import secrets as pysecrets
import uuid
from datetime import datetime

from sqlalchemy import Connection, Engine, update

from phoihop_common import db as db_kit
from phoihop_common.db import make_engine as make_engine  # re-exported for callers
from phoihop_common.db import ping as ping
from phoihop_notify.config import NAMESPACE
from phoihop_notify.models import deliveries, subscriptions

PENDING, DELIVERED, FAILED, CANCELLED = "pending", "delivered", "failed", "cancelled"


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (version table `alembic_version_notify`)."""
    db_kit.migrate(engine, package="phoihop_notify")


def new_secret() -> str:
    """A fresh Standard Webhooks secret (`whsec_` + base64 of 32 random bytes)."""
    return "whsec_" + base64.b64encode(pysecrets.token_bytes(32)).decode()


def delivery_id(*, event_id: str, subscription_id: str) -> str:
    """Stable id of the delivery of one event to one subscription (the `webhook-id`)."""
    return "msg_" + uuid.uuid5(NAMESPACE, f"delivery/{event_id}/{subscription_id}").hex


def retire(conn: Connection, *, subscription_id: str, now: datetime) -> None:
    """Mark a subscription deleted (and disabled) and cancel its pending deliveries."""
    conn.execute(
        update(subscriptions)
        .where(subscriptions.c.id == subscription_id, subscriptions.c.deleted_at.is_(None))
        .values(deleted_at=now, enabled=False, updated_at=now)
    )
    conn.execute(
        update(deliveries)
        .where(deliveries.c.subscription_id == subscription_id, deliveries.c.status == PENDING)
        .values(status=CANCELLED, updated_at=now)
    )
