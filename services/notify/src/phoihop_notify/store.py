"""Data access of notify: keyword-only functions over one SQLAlchemy engine (run in threads)."""

from __future__ import annotations

import base64
import secrets as pysecrets
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Row,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError

from phoihop_common import db as db_kit
from phoihop_common.db import make_engine as make_engine  # re-exported for callers
from phoihop_common.db import ping as ping
from phoihop_notify.config import (
    EMAIL_EVENT_TYPES,
    NAMESPACE,
    SubscriptionsFile,
    email_subscription_id,
)
from phoihop_notify.exceptions import NotFoundError
from phoihop_notify.matching import Filter, Scope, matching
from phoihop_notify.models import deliveries, events, outbox, subscriptions

PENDING, DELIVERED, FAILED, CANCELLED = "pending", "delivered", "failed", "cancelled"


# --------------------------------------------------------------------------- engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (version table `alembic_version_notify`)."""
    db_kit.migrate(engine, package="phoihop_notify")


def new_secret() -> str:
    """A fresh Standard Webhooks secret (`whsec_` + base64 of 32 random bytes)."""
    return "whsec_" + base64.b64encode(pysecrets.token_bytes(32)).decode()


def delivery_id(*, event_id: str, subscription_id: str) -> str:
    """Stable id of the delivery of one event to one subscription (the `webhook-id`)."""
    return "msg_" + uuid.uuid5(NAMESPACE, f"delivery/{event_id}/{subscription_id}").hex


# --------------------------------------------------------------------------- seeding


def seed(engine: Engine, *, config: SubscriptionsFile, now: datetime) -> int:
    """Upsert config subscriptions and contacts; retire config rows no longer in the file."""
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
    with engine.begin() as conn:
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
            _retire(conn, subscription_id=sub_id, now=now)
    return len(rows)


def _retire(conn: Connection, *, subscription_id: str, now: datetime) -> None:
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


# --------------------------------------------------------------------------- consuming


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


# --------------------------------------------------------------------------- dispatching


@dataclass(frozen=True)
class Due:
    """A delivery whose next attempt is due, with its subscription and event."""

    id: str
    event_id: str
    event_type: str
    recommendation_id: str
    sequence: int
    attempts: int
    round_start: int
    subscription_id: str
    agency: str
    channel: str
    target: str
    secrets: tuple[str, ...]
    failing_since: datetime | None
    attributes: dict[str, Any]
    data: dict[str, Any]


def _due_query() -> Any:
    """The due-deliveries query, built once (parameters: now, held_before, limit, skips)."""
    d, s, e = deliveries, subscriptions, events
    earlier = deliveries.alias("earlier")
    prior = events.alias("prior")
    earlier_pending = exists().where(
        earlier.c.subscription_id == d.c.subscription_id,
        earlier.c.recommendation_id == d.c.recommendation_id,
        earlier.c.status == PENDING,
        earlier.c.sequence < d.c.sequence,
    )
    seen_before = (
        select(func.count())
        .where(prior.c.recommendation_id == d.c.recommendation_id, prior.c.sequence < d.c.sequence)
        .scalar_subquery()
    )
    return (
        select(
            d.c.id,
            d.c.event_id,
            d.c.recommendation_id,
            d.c.sequence,
            d.c.attempts,
            d.c.round_start,
            d.c.subscription_id,
            e.c.event_type,
            e.c.attributes,
            e.c.data,
            s.c.agency,
            s.c.channel,
            s.c.target,
            s.c.secret,
            s.c.previous_secret,
            s.c.previous_secret_expires_at,
            s.c.failing_since,
        )
        .join(s, s.c.id == d.c.subscription_id)
        .join(e, e.c.event_id == d.c.event_id)
        .where(
            d.c.status == PENDING,
            d.c.next_attempt_at <= bindparam("now", type_=d.c.next_attempt_at.type),
            s.c.enabled.is_(True),
            s.c.deleted_at.is_(None),
            ~earlier_pending,
            # Hold a case's later event until its earlier ones were consumed (bounded wait).
            or_(
                seen_before >= d.c.sequence - 1,
                d.c.created_at <= bindparam("held_before", type_=d.c.created_at.type),
            ),
            d.c.subscription_id.not_in(bindparam("skip_subscriptions", expanding=True)),
            d.c.id.not_in(bindparam("skip_ids", expanding=True)),
        )
        # Index order (status, next_attempt_at): the scan stops after `limit` rows.
        .order_by(d.c.next_attempt_at)
        .limit(bindparam("limit", type_=Integer()))
    )


_DUE = _due_query()


def due_deliveries(
    engine: Engine,
    *,
    now: datetime,
    hold: timedelta,
    limit: int,
    skip_subscriptions: Collection[str] = (),
    skip_ids: Collection[str] = (),
) -> list[Due]:
    """Due deliveries of enabled subscriptions, each only after the earlier ones of its case.

    `skip_subscriptions` are endpoints the dispatcher cannot send to right now (rate limit,
    connections in use) so that their backlog does not hide other endpoints' due deliveries;
    `skip_ids` are deliveries it is attempting.
    """
    params = {
        "now": now,
        "held_before": now - hold,
        "limit": limit,
        "skip_subscriptions": list(skip_subscriptions),
        "skip_ids": list(skip_ids),
    }
    with engine.connect() as conn:
        return [_due(r, now=now) for r in conn.execute(_DUE, params)]


def _due(r: Any, *, now: datetime) -> Due:
    secrets: tuple[str, ...] = (r.secret,) if r.secret else ()
    if r.previous_secret and r.previous_secret_expires_at and r.previous_secret_expires_at > now:
        secrets = (*secrets, r.previous_secret)
    return Due(
        id=r.id,
        event_id=r.event_id,
        event_type=r.event_type,
        recommendation_id=r.recommendation_id,
        sequence=r.sequence,
        attempts=r.attempts,
        round_start=r.round_start,
        subscription_id=r.subscription_id,
        agency=r.agency,
        channel=r.channel,
        target=r.target,
        secrets=secrets,
        failing_since=r.failing_since,
        attributes=dict(r.attributes),
        data=dict(r.data),
    )


_CLAIM = (
    update(deliveries)
    .where(
        deliveries.c.status == PENDING,
        tuple_(deliveries.c.id, deliveries.c.attempts).in_(bindparam("pairs", expanding=True)),
    )
    .values(
        attempts=deliveries.c.attempts + 1,
        next_attempt_at=bindparam("lease_until", type_=deliveries.c.next_attempt_at.type),
        updated_at=bindparam("now", type_=deliveries.c.updated_at.type),
    )
    .returning(deliveries.c.id)
)


def claim(
    engine: Engine, *, items: Sequence[Due], lease_until: datetime, now: datetime
) -> list[Due]:
    """Take deliveries for one attempt each, in one statement; return those this caller got.

    Compare-and-set on (`id`, `attempts`): a delivery another dispatcher claimed meanwhile is
    left out. The lease (`next_attempt_at`) makes a crashed attempt due again.
    """
    if not items:
        return []
    with engine.begin() as conn:
        got = conn.scalars(
            _CLAIM,
            {"pairs": [(d.id, d.attempts) for d in items], "lease_until": lease_until, "now": now},
        ).all()
    mine = set(got)
    return [d for d in items if d.id in mine]


def release(engine: Engine, *, items: Sequence[Due], now: datetime) -> None:
    """Give back claims whose attempt never finished (shutdown): due again now, same count."""
    if not items:
        return
    with engine.begin() as conn:
        conn.execute(
            update(deliveries)
            .where(
                deliveries.c.id == bindparam("b_id"),
                deliveries.c.attempts == bindparam("b_attempts"),
                deliveries.c.status == PENDING,
            )
            .values(attempts=bindparam("b_prior"), next_attempt_at=now, updated_at=now),
            [{"b_id": d.id, "b_attempts": d.attempts + 1, "b_prior": d.attempts} for d in items],
        )


@dataclass(frozen=True)
class Attempt:
    """The effect of one finished attempt, to be recorded."""

    due: Due
    attempt: int  # the delivery's attempt count after this attempt
    status: str
    next_attempt_at: datetime
    status_code: int | None
    error: str | None
    failed: bool
    disable_reason: str | None
    outcome_id: str
    outcome_payload: dict[str, Any]
    at: datetime


@dataclass(frozen=True)
class Recorded:
    """What recording a batch changed: endpoints it disabled; whether later events now wait."""

    disabled: set[str]
    unblocked: bool  # a finished delivery has a later pending one of the same case


_RECORD_ATTEMPT = update(deliveries).where(
    deliveries.c.id == bindparam("b_id"),
    deliveries.c.attempts == bindparam("b_attempt"),
)
_HEALTHY = (
    update(subscriptions)
    .where(subscriptions.c.id == bindparam("b_sid"), subscriptions.c.failing_since.is_not(None))
    .values(failing_since=None)
)
_KNOWN_OUTCOMES = select(outbox.c.id).where(outbox.c.id.in_(bindparam("ids", expanding=True)))
_INSERT_OUTBOX = insert(outbox)
_UNBLOCKED = (
    select(deliveries.c.id)
    .where(
        deliveries.c.status == PENDING,
        tuple_(deliveries.c.subscription_id, deliveries.c.recommendation_id).in_(
            bindparam("cases", expanding=True)
        ),
    )
    .limit(1)
)


def record_attempts(engine: Engine, *, attempts: Sequence[Attempt]) -> Recorded:
    """Store attempts' effects, endpoints' health and outcome events in one transaction."""
    if not attempts:
        return Recorded(disabled=set(), unblocked=False)
    groups: dict[str, list[dict[str, Any]]] = {}
    for a in attempts:
        row: dict[str, Any] = {
            "b_id": a.due.id,
            "b_attempt": a.attempt,
            "status": a.status,
            "next_attempt_at": a.next_attempt_at,
            "last_status_code": a.status_code,
            "last_error": a.error,
            "updated_at": a.at,
        }
        if a.status == DELIVERED:
            row["delivered_at"] = a.at
        elif a.status == FAILED:
            row["failed_at"] = a.at
        groups.setdefault(a.status, []).append(row)
    disabled: set[str] = set()
    with engine.begin() as conn:
        for rows in groups.values():
            # Only the claim that made this attempt may record it (a lease may have expired).
            conn.execute(_RECORD_ATTEMPT, rows)
        healthy: list[dict[str, Any]] = []
        for sub_id, since in _failing_since(attempts).items():
            if since is None:  # healthy: write only when it was failing
                healthy.append({"b_sid": sub_id})
                continue
            stmt = update(subscriptions).where(subscriptions.c.id == sub_id)
            conn.execute(stmt.values(failing_since=since))
        if healthy:
            conn.execute(_HEALTHY, healthy)
        for a in attempts:
            if a.disable_reason and a.due.subscription_id not in disabled:
                result = conn.execute(
                    update(subscriptions)
                    .where(
                        subscriptions.c.id == a.due.subscription_id,
                        subscriptions.c.enabled.is_(True),
                    )
                    .values(enabled=False, disabled_reason=a.disable_reason, updated_at=a.at)
                )
                if result.rowcount:
                    disabled.add(a.due.subscription_id)
        ids = [a.outcome_id for a in attempts]
        known = set(conn.scalars(_KNOWN_OUTCOMES, {"ids": ids}))
        fresh: dict[str, Attempt] = {}
        for a in attempts:
            if a.outcome_id not in known:
                fresh.setdefault(a.outcome_id, a)
        if fresh:
            conn.execute(
                _INSERT_OUTBOX,
                [
                    {
                        "id": a.outcome_id,
                        "recommendation_id": a.due.recommendation_id,
                        "payload": a.outcome_payload,
                        "created_at": a.at,
                    }
                    for a in fresh.values()
                ],
            )
        done = {
            (a.due.subscription_id, a.due.recommendation_id)
            for a in attempts
            if a.status != PENDING
        }
        unblocked = bool(done) and (conn.scalar(_UNBLOCKED, {"cases": list(done)}) is not None)
    return Recorded(disabled=disabled, unblocked=unblocked)


def _failing_since(attempts: Sequence[Attempt]) -> dict[str, Any]:
    """Per endpoint, its `failing_since` after these attempts (taken in completion order).

    A success clears it; failures after the last success start it at the first of them, or
    keep an earlier start when the batch holds no success.
    """
    out: dict[str, Any] = {}
    for sub_id in dict.fromkeys(a.due.subscription_id for a in attempts):
        mine = [a for a in attempts if a.due.subscription_id == sub_id]
        last_ok = max((i for i, a in enumerate(mine) if not a.failed), default=-1)
        trailing = mine[last_ok + 1 :]
        if not trailing:
            out[sub_id] = None
        elif last_ok >= 0:
            out[sub_id] = trailing[0].at
        else:
            out[sub_id] = func.coalesce(subscriptions.c.failing_since, trailing[0].at)
    return out


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


def gauges(engine: Engine) -> tuple[int, int]:
    """(deliveries waiting for a retry, disabled endpoints)."""
    with engine.connect() as conn:
        retrying = conn.scalar(
            select(func.count())
            .select_from(deliveries)
            .where(deliveries.c.status == PENDING, deliveries.c.attempts > deliveries.c.round_start)
        )
        disabled = conn.scalar(
            select(func.count())
            .select_from(subscriptions)
            .where(subscriptions.c.enabled.is_(False), subscriptions.c.deleted_at.is_(None))
        )
    return int(retrying or 0), int(disabled or 0)


# --------------------------------------------------------------------------- API


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
        _retire(conn, subscription_id=subscription_id, now=now)


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
