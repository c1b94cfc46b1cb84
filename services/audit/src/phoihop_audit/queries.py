"""Read side: status, trail, search and reconciliation, each scoped to the caller."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection, Engine, and_, func, or_, select

from phoihop_audit import trail as log_store
from phoihop_audit.access import Caller, case_of, readable, scope_clause, visible_expr
from phoihop_audit.db import events, involvement, recommendations
from phoihop_audit.exceptions import BadRequestError, KeyConfigError, NotFoundError
from phoihop_audit.keys import PiiCipher
from phoihop_audit.readmodel import OPEN_STATUSES, OVERDUE_STATUSES, Projection, iso
from phoihop_common.access import Relation, Resource
from phoihop_common.config import Reference
from phoihop_common.text import tokens
from phoihop_schemas import lifecycle

MAX_PAGE_SIZE = 200
MAX_PAGE = 10_000
# The dates the service answers for: wide enough for any real record, narrow enough that
# time-zone shifts and "the day after" never leave the calendar.
MIN_DATE = date(2000, 1, 1)
MAX_DATE = date(2100, 12, 31)
# Reads of a reporter are themselves logged: entries of this type, outside any sequence.
DISCLOSURE = "reporter_disclosed"
AUDIT_SOURCE = "/phoihop/audit"
STATUS_ENDPOINT = "GET /v1/recommendations/{rec_id}"
TRAIL_ENDPOINT = "GET /v1/recommendations/{rec_id}/trail"


def utcnow() -> datetime:
    """Now as naive UTC (how the database stores times)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Read:
    """A response body, and whether it carries a reporter (then it must not be cached)."""

    body: dict[str, Any]
    carries_reporter: bool


@dataclass(frozen=True)
class _View:
    projection: Projection
    rights: frozenset[Resource]


def _view(
    engine: Engine, *, rec_id: str, caller: Caller, reference: Reference, need: Resource
) -> _View:
    """The case and the caller's rights; not found, exactly as an unknown id, without `need`."""
    with engine.connect() as conn:
        p = log_store.load_projection(conn, rec_id)
        sources = frozenset(
            a
            for (a,) in conn.execute(
                select(involvement.c.agency).where(
                    involvement.c.recommendation_id == rec_id,
                    involvement.c.relation == Relation.SOURCE.value,
                )
            )
        )
    if p is None:
        raise NotFoundError(rec_id)
    rights = readable(reference=reference, caller=caller, case=case_of(p, sources=sources))
    if need not in rights:
        raise NotFoundError(rec_id)
    return _View(projection=p, rights=rights)


def _decrypt(token: str, *, cipher: PiiCipher) -> Any:
    """The reporter behind a stored token, or None when this key cannot open it."""
    try:
        return json.loads(cipher.decrypt(token))
    except KeyConfigError:
        return None


def record_disclosure(
    engine: Engine, *, rec_id: str, agency: str, endpoint: str, cipher: PiiCipher
) -> None:
    """Append to the hash-chained log that `agency` was shown the reporter, where and when."""
    at = datetime.now(UTC).isoformat()
    event_id = str(uuid.uuid4())
    data = {"agency": agency, "endpoint": endpoint, "at": at}
    digest = cipher.digest(
        log_store.canonical_json({"id": event_id, "type": DISCLOSURE, "data": data}).encode()
    )
    entry = log_store.Incoming(
        event_id=event_id,
        type=DISCLOSURE,
        recommendation_id=rec_id,
        sequence=None,
        source=AUDIT_SOURCE,
        event_time=at,
        data=log_store.canonical_json(data),
        reporter_plain=None,
        digest=digest,
    )
    log_store.append(engine, [entry], cipher=cipher)


def _merged_into(conn: Connection, p: Projection, *, answers: bool) -> dict[str, Any] | None:
    """For a merged recommendation: where it went (never the other case's text or sources)."""
    if p.duplicate_of is None:
        return None
    target = log_store.load_projection(conn, p.duplicate_of) or Projection(id=p.duplicate_of)
    given = [
        {k: a[k] for k in ("agency", "text", "on_time", "answered_at")} for a in target.answers
    ]
    return {
        "id": target.id,
        "status": target.status,
        "agency": target.agency,
        "deadline": iso(target.deadline),
        "answered_at": iso(target.answered_at),
        "answers": given if answers else [],
    }


# Events by which a person says a case does not repeat another: the field naming the other.
_DISMISSALS = {"duplicate_dismissed": "candidate", "unmerged": "duplicate_of"}


def _dismissed_by_others(conn: Connection, p: Projection, ids: list[str]) -> set[str]:
    """Those of `ids` on which a person said they do not repeat `p` (a pair goes both ways)."""
    rows = conn.execute(
        select(events.c.recommendation_id, events.c.type, events.c.data).where(
            events.c.recommendation_id.in_(ids),
            events.c.type.in_(sorted(_DISMISSALS)),
            events.c.sequence.is_not(None),
        )
    )
    return {rec for rec, type_, data in rows if json.loads(data).get(_DISMISSALS[type_]) == p.id}


def _suggested(conn: Connection, p: Projection, *, scope: ColumnElement[bool] | None) -> list[str]:
    """The suggested duplicates still open that the caller may read itself, best first.

    Never a case a person said this one does not repeat, on either of the two cases.
    """
    ids = p.suggested_ids
    if not ids:
        return []
    r = recommendations
    conds = [r.c.id.in_(ids), r.c.status.in_(OPEN_STATUSES), r.c.id != p.id]
    if scope is not None:
        conds.append(scope)
    kept = {i for (i,) in conn.execute(select(r.c.id).where(*conds))}
    if kept:
        kept -= _dismissed_by_others(conn, p, sorted(kept))
    return [i for i in dict.fromkeys(ids) if i in kept]


def status(
    engine: Engine,
    *,
    rec_id: str,
    caller: Caller,
    reference: Reference,
    cipher: PiiCipher,
    with_reporter: bool = True,
) -> Read:
    """Current status of one recommendation, with what the policy lets the caller read."""
    view = _view(engine, rec_id=rec_id, caller=caller, reference=reference, need=Resource.STATUS)
    p, rights = view.projection, view.rights
    merged_here = [recommendations.c.duplicate_of == rec_id]
    scope = scope_clause(reference=reference, caller=caller)
    with engine.connect() as conn:
        duplicate_count = conn.execute(
            select(func.count()).select_from(recommendations).where(*merged_here)
        ).scalar_one()
        # Only the merged recommendations the caller may read itself are named.
        duplicates = [
            r
            for (r,) in conn.execute(
                select(recommendations.c.id)
                .where(*merged_here, *([] if scope is None else [scope]))
                .order_by(recommendations.c.received_at, recommendations.c.id)
            )
        ]
        if Resource.TRAIL not in rights:
            duplicate_count, duplicates = 0, []
        suggested = _suggested(conn, p, scope=scope) if Resource.TRAIL in rights else []
        merged_into = _merged_into(conn, p, answers=Resource.ANSWERS in rights)
        token = conn.execute(
            select(events.c.reporter_enc).where(
                events.c.recommendation_id == rec_id,
                events.c.type == "received",
                events.c.reporter_enc.is_not(None),
            )
        ).scalar()
    reporter = None
    if token is not None and with_reporter and Resource.REPORTER in rights:
        reporter = _decrypt(token, cipher=cipher)
    if reporter is not None:
        record_disclosure(
            engine, rec_id=rec_id, agency=caller.agency, endpoint=STATUS_ENDPOINT, cipher=cipher
        )
    body = {
        "id": p.id,
        "status": p.status,
        "kind": p.kind,
        "category": p.category,
        "level": p.level,
        "agency": p.agency,
        "deadline": iso(p.deadline),
        "duplicate_of": p.duplicate_of,
        "merged_into": merged_into,
        "sequence": p.sequence,
        "channel": p.channel,
        "locality": p.locality,
        "text": p.text if Resource.TEXT in rights else None,
        "submitted_by": p.submitted_by,
        "source_ref": p.source_ref,
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
        "duplicate_count": duplicate_count,
        "suggested_duplicates": suggested,
        # people's corrections of duplicate decisions: in the trail too, so for its readers
        "corrections": p.corrections if Resource.TRAIL in rights else [],
        "assignments": p.assignments,
        "deadlines": p.deadlines,
        "answers": p.answers if Resource.ANSWERS in rights else [],
        "escalations": p.escalations,
        "declines": p.declines,
        "missing_sequences": p.missing_sequences,
        "reporter": reporter,
        "reporter_withheld": token is not None and reporter is None,
    }
    return Read(body=body, carries_reporter=reporter is not None)


def trail(
    engine: Engine,
    *,
    rec_id: str,
    caller: Caller,
    reference: Reference,
    cipher: PiiCipher,
    with_reporter: bool = True,
) -> Read:
    """Stored events by sequence; the caller's own notification outcomes; reporter reads."""
    view = _view(engine, rec_id=rec_id, caller=caller, reference=reference, need=Resource.TRAIL)
    rights = view.rights
    with engine.connect() as conn:
        rows = conn.execute(
            select(events)
            .where(events.c.recommendation_id == rec_id)
            .order_by(events.c.sequence, events.c.position)
        ).all()
    lifecycle: list[dict[str, Any]] = []
    notifications: list[dict[str, Any]] = []
    disclosures: list[dict[str, Any]] = []
    shown = False
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
        if r.type == DISCLOSURE:
            disclosures.append(item)
            continue
        if r.sequence is None:  # a delivery outcome: only the caller's own subscriptions'
            if Resource.NOTIFICATIONS in rights and data.get("agency") == caller.agency:
                notifications.append(item)
            continue
        if r.type == "received" and Resource.TEXT not in rights:
            data["text"] = None
        if r.type == "answered" and Resource.ANSWERS not in rights:
            data["text"] = None
        if r.reporter_enc is not None:
            reporter = None
            if with_reporter and Resource.REPORTER in rights:
                reporter = _decrypt(r.reporter_enc, cipher=cipher)
            if reporter is not None:
                data["reporter"] = reporter
                shown = True
            else:
                item["reporter_withheld"] = True
        lifecycle.append(item)
    if shown:
        record_disclosure(
            engine, rec_id=rec_id, agency=caller.agency, endpoint=TRAIL_ENDPOINT, cipher=cipher
        )
    notifications.sort(key=lambda i: i["position"])
    disclosures.sort(key=lambda i: i["position"])
    body = {
        "id": rec_id,
        "events": lifecycle,
        "notifications": notifications,
        "disclosures": disclosures,
        "missing_sequences": view.projection.missing_sequences,
    }
    return Read(body=body, carries_reporter=shown)


@dataclass(frozen=True)
class SearchFilters:
    """Filters of `GET /v1/recommendations`."""

    agency: str | None = None
    locality: str | None = None
    category: str | None = None
    kind: str | None = None
    status: str | None = None
    source_ref: str | None = None  # the submitter's own reference
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
    for day in (date_from, date_to):
        if day is not None and not MIN_DATE <= day <= MAX_DATE:
            raise BadRequestError("bad_period", f"dates must lie within {MIN_DATE}..{MAX_DATE}")
    zone = ZoneInfo(tz)

    def utc(day: date) -> datetime:
        return datetime.combine(day, time.min, zone).astimezone(UTC).replace(tzinfo=None)

    start = utc(date_from) if date_from else None
    end = utc(date_to + timedelta(days=1)) if date_to else None
    return start, end


def search(
    engine: Engine,
    *,
    filters: SearchFilters,
    caller: Caller,
    reference: Reference,
    tz: str = "Asia/Ho_Chi_Minh",
) -> dict[str, Any]:
    """Filtered, full-text, paginated list of the recommendations the caller may read."""
    r = recommendations
    conds: list[Any] = []
    scope = scope_clause(reference=reference, caller=caller)
    if scope is not None:
        conds.append(scope)
    for column, value in (
        (r.c.agency, filters.agency),
        (r.c.locality, filters.locality),
        (r.c.category, filters.category),
        (r.c.kind, filters.kind),
        (r.c.status, filters.status),
        (r.c.source_ref, filters.source_ref),
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
    words = tokens(filters.q or "")
    if words:  # searching the text of a case whose text one may not read would be an oracle
        text_scope = scope_clause(reference=reference, caller=caller, resource=Resource.TEXT)
        if text_scope is not None:
            conds.append(text_scope)
    for token in words:
        escaped = token.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conds.append(r.c.text_folded.like(f"%{escaped}%", escape="\\"))
    where = and_(*conds) if conds else and_(True)
    page = min(max(1, filters.page), MAX_PAGE)
    size = min(max(1, filters.page_size), MAX_PAGE_SIZE)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(r).where(where)).scalar_one()
        text_visible = visible_expr(reference=reference, caller=caller, resource=Resource.TEXT)
        rows = conn.execute(
            select(r, text_visible.label("text_visible"))
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
            "submitted_by": row.submitted_by,
            "source_ref": row.source_ref,
            "deadline": iso(row.deadline),
            "duplicate_of": row.duplicate_of,
            "sequence": row.sequence,
            "received_at": iso(row.received_at),
            "answered_at": iso(row.answered_at),
            "escalation_level": row.escalation_level,
            "overdue": bool(lifecycle.is_overdue(row.status, row.deadline, now)),
            "text": row.text if row.text_visible else None,
        }
        for row in rows
    ]
    return {"total": total, "page": page, "page_size": size, "items": items}


def reconciliation(engine: Engine, *, caller: Caller, reference: Reference) -> dict[str, Any]:
    """Recommendations whose sequence numbers have a hole, with the missing numbers."""
    r = recommendations
    conds: list[Any] = [r.c.has_gap.is_(True)]
    scope = scope_clause(reference=reference, caller=caller)
    if scope is not None:
        conds.append(scope)
    with engine.connect() as conn:
        ids = [i for (i,) in conn.execute(select(r.c.id).where(*conds).order_by(r.c.id))]
        gaps = []
        for rec_id in ids:
            p = log_store.load_projection(conn, rec_id)
            if p is not None and p.missing_sequences:
                gaps.append({"id": rec_id, "sequence": p.sequence, "missing": p.missing_sequences})
        checked = conn.execute(select(func.count()).select_from(r).where(*conds[1:])).scalar_one()
    return {"checked": checked, "gaps": gaps, "gap_count": len(gaps)}
