"""Read side: status, trail, search and reconciliation, each scoped to the caller."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, func, or_, select

from phoihop_audit.access import Caller, in_scope, reporter_cleared, scope_clause
from phoihop_audit.db import events, involvement, recommendations
from phoihop_audit.exceptions import KeyConfigError, NotFoundError
from phoihop_audit.keys import PiiCipher
from phoihop_audit.readmodel import OVERDUE_STATUSES, Projection, iso
from phoihop_audit.trail import load_projection
from phoihop_common.config import Reference
from phoihop_common.text import tokens

MAX_PAGE_SIZE = 200


def utcnow() -> datetime:
    """Now as naive UTC (how the database stores times)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _visible(engine: Engine, rec_id: str, caller: Caller) -> Projection:
    with engine.connect() as conn:
        p = load_projection(conn, rec_id)
        agencies = {
            a
            for (a,) in conn.execute(
                select(involvement.c.agency).where(involvement.c.recommendation_id == rec_id)
            )
        }
    if p is None or not in_scope(caller, agencies):
        raise NotFoundError(rec_id)
    return p


def _reporter(
    engine: Engine,
    rec_id: str,
    p: Projection,
    caller: Caller,
    reference: Reference,
    cipher: PiiCipher,
) -> tuple[Any, bool]:
    """(reporter or None, whether a stored reporter was withheld)."""
    with engine.connect() as conn:
        token = conn.execute(
            select(events.c.reporter_enc).where(
                events.c.recommendation_id == rec_id,
                events.c.type == "received",
                events.c.reporter_enc.is_not(None),
            )
        ).scalar()
    if token is None:
        return None, False
    if not reporter_cleared(caller, p, reference=reference):
        return None, True
    try:
        return json.loads(cipher.decrypt(token)), False
    except KeyConfigError:
        return None, True


def status(
    engine: Engine, *, rec_id: str, caller: Caller, reference: Reference, cipher: PiiCipher
) -> dict[str, Any]:
    """Current status of one recommendation, with its histories."""
    p = _visible(engine, rec_id, caller)
    with engine.connect() as conn:
        duplicates = [
            r
            for (r,) in conn.execute(
                select(recommendations.c.id)
                .where(recommendations.c.duplicate_of == rec_id)
                .order_by(recommendations.c.received_at, recommendations.c.id)
            )
        ]
    reporter, withheld = _reporter(engine, rec_id, p, caller, reference, cipher)
    return {
        "id": p.id,
        "status": p.status,
        "kind": p.kind,
        "category": p.category,
        "level": p.level,
        "agency": p.agency,
        "deadline": iso(p.deadline),
        "duplicate_of": p.duplicate_of,
        "sequence": p.sequence,
        "channel": p.channel,
        "locality": p.locality,
        "text": p.text,
        "submitted_by": p.submitted_by,
        "submitted_at": p.submitted_at,
        "received_at": iso(p.received_at),
        "accept_deadline": iso(p.accept_deadline),
        "escalation_level": p.escalation_level,
        "overdue": p.overdue(utcnow()),
        "answered_at": iso(p.answered_at),
        "answered_on_time": p.answered_on_time,
        "closed_at": iso(p.closed_at),
        "similarity": p.similarity,
        "duplicates": duplicates,
        "assignments": p.assignments,
        "deadlines": p.deadlines,
        "answers": p.answers,
        "escalations": p.escalations,
        "declines": p.declines,
        "missing_sequences": p.missing_sequences,
        "reporter": reporter,
        "reporter_withheld": withheld,
    }


def trail(
    engine: Engine, *, rec_id: str, caller: Caller, reference: Reference, cipher: PiiCipher
) -> dict[str, Any]:
    """Every stored event of one recommendation by sequence; notification outcomes apart."""
    p = _visible(engine, rec_id, caller)
    cleared = reporter_cleared(caller, p, reference=reference)
    with engine.connect() as conn:
        rows = conn.execute(
            select(events)
            .where(events.c.recommendation_id == rec_id)
            .order_by(events.c.sequence, events.c.position)
        ).all()
    lifecycle: list[dict[str, Any]] = []
    notifications: list[dict[str, Any]] = []
    for r in rows:
        data = json.loads(r.data)
        item: dict[str, Any] = {
            "event_id": r.event_id,
            "type": r.type,
            "sequence": r.sequence,
            "time": r.event_time,
            "source": r.source,
            "data": data,
            "position": int(r.position),
            "hash": r.hash,
        }
        if r.reporter_enc is not None:
            if cleared:
                data["reporter"] = json.loads(cipher.decrypt(r.reporter_enc))
            else:
                item["reporter_withheld"] = True
        (lifecycle if r.sequence is not None else notifications).append(item)
    notifications.sort(key=lambda i: i["position"])
    return {
        "id": rec_id,
        "events": lifecycle,
        "notifications": notifications,
        "missing_sequences": p.missing_sequences,
    }


@dataclass(frozen=True)
class SearchFilters:
    """Filters of `GET /v1/recommendations`."""

    agency: str | None = None
    locality: str | None = None
    category: str | None = None
    kind: str | None = None
    status: str | None = None
    overdue: bool | None = None
    date_from: date | None = None
    date_to: date | None = None
    q: str | None = None
    page: int = 1
    page_size: int = 20


def period_bounds(
    date_from: date | None, date_to: date | None, *, tz: str = "Asia/Ho_Chi_Minh"
) -> tuple[datetime | None, datetime | None]:
    """Inclusive local calendar dates as a half-open [start, end) of naive UTC datetimes."""
    zone = ZoneInfo(tz)

    def utc(day: date) -> datetime:
        return datetime.combine(day, time.min, zone).astimezone(UTC).replace(tzinfo=None)

    start = utc(date_from) if date_from else None
    end = utc(date_to + timedelta(days=1)) if date_to else None
    return start, end


def search(
    engine: Engine, *, filters: SearchFilters, caller: Caller, tz: str = "Asia/Ho_Chi_Minh"
) -> dict[str, Any]:
    """Filtered, full-text, paginated list of recommendations in the caller's scope."""
    r = recommendations
    conds: list[Any] = []
    scope = scope_clause(caller)
    if scope is not None:
        conds.append(scope)
    for column, value in (
        (r.c.agency, filters.agency),
        (r.c.locality, filters.locality),
        (r.c.category, filters.category),
        (r.c.kind, filters.kind),
        (r.c.status, filters.status),
    ):
        if value:
            conds.append(column == value)
    now = utcnow()
    overdue_expr = and_(r.c.status.in_(OVERDUE_STATUSES), r.c.deadline < now)
    if filters.overdue is True:
        conds.append(overdue_expr)
    elif filters.overdue is False:
        conds.append(
            or_(r.c.status.not_in(OVERDUE_STATUSES), r.c.deadline.is_(None), r.c.deadline >= now)
        )
    start, end = period_bounds(filters.date_from, filters.date_to, tz=tz)
    if start:
        conds.append(r.c.received_at >= start)
    if end:
        conds.append(r.c.received_at < end)
    for token in tokens(filters.q or ""):
        escaped = token.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conds.append(r.c.text_folded.like(f"%{escaped}%", escape="\\"))
    where = and_(*conds) if conds else and_(True)
    page = max(1, filters.page)
    size = min(max(1, filters.page_size), MAX_PAGE_SIZE)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(r).where(where)).scalar_one()
        rows = conn.execute(
            select(r)
            .where(where)
            .order_by(r.c.received_at.desc(), r.c.id)
            .offset((page - 1) * size)
            .limit(size)
        ).all()
    items = [
        {
            "id": row.id,
            "status": row.status,
            "kind": row.kind,
            "category": row.category,
            "level": row.level,
            "agency": row.agency,
            "locality": row.locality,
            "deadline": iso(row.deadline),
            "duplicate_of": row.duplicate_of,
            "sequence": row.sequence,
            "received_at": iso(row.received_at),
            "answered_at": iso(row.answered_at),
            "escalation_level": row.escalation_level,
            "overdue": bool(
                row.status in OVERDUE_STATUSES and row.deadline is not None and row.deadline < now
            ),
            "text": row.text,
        }
        for row in rows
    ]
    return {"total": total, "page": page, "page_size": size, "items": items}


def reconciliation(engine: Engine, *, caller: Caller) -> dict[str, Any]:
    """Recommendations whose sequence numbers have a hole, with the missing numbers."""
    r = recommendations
    conds: list[Any] = [r.c.has_gap.is_(True)]
    scope = scope_clause(caller)
    if scope is not None:
        conds.append(scope)
    with engine.connect() as conn:
        ids = [i for (i,) in conn.execute(select(r.c.id).where(*conds).order_by(r.c.id))]
        gaps = []
        for rec_id in ids:
            p = load_projection(conn, rec_id)
            if p is not None and p.missing_sequences:
                gaps.append({"id": rec_id, "sequence": p.sequence, "missing": p.missing_sequences})
        checked = conn.execute(select(func.count()).select_from(r).where(*conds[1:])).scalar_one()
    return {"checked": checked, "gaps": gaps, "gap_count": len(gaps)}
