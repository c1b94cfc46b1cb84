"""Subscriptions as agencies manage them through the API (secrets shown only when made)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Row, insert, select, update

from phoihop_notify.exceptions import NotFoundError
from phoihop_notify.matching import Scope
from phoihop_notify.models import subscriptions
from phoihop_notify.store.base import new_secret, retire


def _visible(agency: str) -> Any:
    return (subscriptions.c.agency == agency) & subscriptions.c.deleted_at.is_(None)


def create_subscription(
    engine: Engine,
    *,
    agency: str,
    url: str,
    event_types: Sequence[str],
    scope: Scope,
    description: str | None,
    now: datetime,
) -> dict[str, Any]:
    """A new webhook subscription with a fresh secret (returned once, with the row)."""
    row = {
        "id": str(uuid.uuid4()),
        "agency": agency,
        "channel": "webhook",
        "target": url,
        "event_types": list(event_types),
        "scope": scope.value,
        "description": description,
        "secret": new_secret(),
        "enabled": True,
        "source": "api",
        "created_at": now,
        "updated_at": now,
    }
    with engine.begin() as conn:
        conn.execute(insert(subscriptions).values(**row))
    return get_subscription(engine, agency=agency, subscription_id=str(row["id"])) | {
        "secret": row["secret"]
    }


def list_subscriptions(engine: Engine, *, agency: str) -> list[dict[str, Any]]:
    """The agency's subscriptions (never the secrets)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(subscriptions).where(_visible(agency)).order_by(subscriptions.c.created_at)
        )
        return [_public(r) for r in rows]


def get_subscription(engine: Engine, *, agency: str, subscription_id: str) -> dict[str, Any]:
    """One of the agency's subscriptions, or NotFoundError."""
    with engine.connect() as conn:
        row = conn.execute(
            select(subscriptions).where(_visible(agency), subscriptions.c.id == subscription_id)
        ).first()
    if row is None:
        raise NotFoundError(f"no subscription {subscription_id}")
    return _public(row)


def update_subscription(
    engine: Engine,
    *,
    agency: str,
    subscription_id: str,
    changes: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """Change url, event types, scope, description or enabled; re-enabling clears the failure."""
    get_subscription(engine, agency=agency, subscription_id=subscription_id)
    values: dict[str, Any] = {"updated_at": now}
    for key in ("description", "event_types", "enabled"):
        if key in changes:
            values[key] = changes[key]
    if "url" in changes:
        values["target"] = changes["url"]
    if "scope" in changes:
        values["scope"] = Scope(changes["scope"]).value
    if changes.get("enabled") is True:
        values["disabled_reason"] = None
        values["failing_since"] = None
    if changes.get("enabled") is False:
        values["disabled_reason"] = "disabled by the agency"
    with engine.begin() as conn:
        conn.execute(
            update(subscriptions).where(subscriptions.c.id == subscription_id).values(**values)
        )
    return get_subscription(engine, agency=agency, subscription_id=subscription_id)


def delete_subscription(
    engine: Engine, *, agency: str, subscription_id: str, now: datetime
) -> None:
    """Delete a subscription; its pending deliveries are cancelled."""
    get_subscription(engine, agency=agency, subscription_id=subscription_id)
    with engine.begin() as conn:
        retire(conn, subscription_id=subscription_id, now=now)


def rotate_secret(
    engine: Engine, *, agency: str, subscription_id: str, overlap: timedelta, now: datetime
) -> dict[str, Any]:
    """New secret; the old one keeps signing (second signature) until the overlap ends."""
    get_subscription(engine, agency=agency, subscription_id=subscription_id)
    secret = new_secret()
    with engine.begin() as conn:
        conn.execute(
            update(subscriptions)
            .where(subscriptions.c.id == subscription_id)
            .values(
                previous_secret=subscriptions.c.secret,
                previous_secret_expires_at=now + overlap,
                secret=secret,
                updated_at=now,
            )
        )
    return get_subscription(engine, agency=agency, subscription_id=subscription_id) | {
        "secret": secret
    }


def subscription_health(engine: Engine, *, subscription_id: str) -> tuple[str, bool]:
    """(agency, enabled) of a subscription."""
    with engine.connect() as conn:
        row = conn.execute(
            select(subscriptions.c.agency, subscriptions.c.enabled).where(
                subscriptions.c.id == subscription_id
            )
        ).one()
    return str(row.agency), bool(row.enabled)


def _public(r: Row[Any]) -> dict[str, Any]:
    return {
        "id": r.id,
        "agency": r.agency,
        "channel": r.channel,
        "url": r.target if r.channel == "webhook" else None,
        "event_types": list(r.event_types or ()),
        "scope": r.scope,
        "description": r.description,
        "enabled": r.enabled,
        "disabled_reason": r.disabled_reason,
        "failing_since": r.failing_since,
        "previous_secret_expires_at": r.previous_secret_expires_at,
        "source": r.source,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
    }
