"""Dispatching: due deliveries, their claims, and the recorded effects of attempts."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)

from phoihop_notify.models import deliveries, events, outbox, subscriptions
from phoihop_notify.store.base import DELIVERED, FAILED, PENDING


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
    with engine.connect() as conn:
        return _query_due(
            conn, now=now, hold=hold, limit=limit, skips=(skip_subscriptions, skip_ids)
        )


def _query_due(
    conn: Connection,
    *,
    now: datetime,
    hold: timedelta,
    limit: int,
    skips: tuple[Collection[str], Collection[str]],
) -> list[Due]:
    """Run the due query; `skips` are (subscriptions, delivery ids) to leave out."""
    params = {
        "now": now,
        "held_before": now - hold,
        "limit": limit,
        "skip_subscriptions": list(skips[0]),
        "skip_ids": list(skips[1]),
    }
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
        return _claim(conn, items, lease_until=lease_until, now=now)


def _claim(
    conn: Connection, items: Sequence[Due], *, lease_until: datetime, now: datetime
) -> list[Due]:
    got = conn.scalars(
        _CLAIM,
        {"pairs": [(d.id, d.attempts) for d in items], "lease_until": lease_until, "now": now},
    ).all()
    mine = set(got)
    return [d for d in items if d.id in mine]


@dataclass(frozen=True)
class Allowance:
    """What a dispatcher may start now: attempts in all, and per endpoint its free
    connections (`slots`) and the sends its rate limit allows (`tokens`); an endpoint in
    neither map gets `fresh_slots` and `fresh_tokens`."""

    room: int
    slots: Mapping[str, int]
    tokens: Mapping[str, int]
    fresh_slots: int
    fresh_tokens: int


@dataclass(frozen=True)
class Taken:
    """What `take_due` claimed, and whether it left due deliveries behind."""

    claimed: list[Due]
    full: bool  # the query returned its limit: more may be due
    starved: bool  # due deliveries waited for room or for an endpoint's connections


def pick(due: Sequence[Due], allowance: Allowance) -> tuple[list[Due], bool]:
    """The due deliveries the allowance lets go now, in order; and whether any waited for
    room or connections (those waiting for a rate-limit token do not count)."""
    slots = dict(allowance.slots)
    tokens = dict(allowance.tokens)
    picked: list[Due] = []
    starved = False
    for d in due:
        if len(picked) >= allowance.room:
            return picked, True
        sid = d.subscription_id
        free = slots.get(sid, allowance.fresh_slots)
        if free <= 0:
            starved = True
            continue
        left = tokens.get(sid, allowance.fresh_tokens)
        if left <= 0:
            continue
        slots[sid], tokens[sid] = free - 1, left - 1
        picked.append(d)
    return picked, starved


def take_due(
    engine: Engine,
    *,
    now: datetime,
    hold: timedelta,
    limit: int,
    allowance: Allowance,
    lease_until: datetime,
    skip_subscriptions: Collection[str] = (),
    skip_ids: Collection[str] = (),
) -> Taken:
    """`due_deliveries`, `pick` and `claim` on one connection: one round trip from the
    dispatcher's event loop instead of two."""
    with engine.begin() as conn:
        due = _query_due(
            conn, now=now, hold=hold, limit=limit, skips=(skip_subscriptions, skip_ids)
        )
        picked, starved = pick(due, allowance)
        claimed = _claim(conn, picked, lease_until=lease_until, now=now) if picked else []
    return Taken(claimed=claimed, full=len(due) >= limit, starved=starved)


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
