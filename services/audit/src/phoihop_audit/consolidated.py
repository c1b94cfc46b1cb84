"""The consolidated list (tổng hợp ý kiến, kiến nghị cử tri): each distinct concern once.

The document provincial offices file before and after a council session. A *batch* is the
recommendations received in a period (local calendar dates, as in the period reports),
optionally only those of one channel and/or one submitting agency. Each concern of the batch
is one row: a recommendation merged into an open case counts under that case, so a group
raised by several communes is one row listing every locality and source of the batch that
raised it and how many times, with the case's category, competent body (its assignee),
deadline, status and the answer — shown once, although it goes to every source.

Access is the one policy (`phoihop_common.access`), case by case:

- a caller that may read the case (supervisors, triage and the need-to-know list every case;
  its submitter, assignee and past assignees) sees the full row; the case's text and answer
  only where it may read them, and the ids of only those merged recommendations it may read
  itself (as the status endpoint names duplicates);
- a caller that may not read the case but submitted a recommendation merged into it (a
  *source*: "a merge never opens a case") sees a row made of its own recommendations, and of
  the case only what its own status says of it (`merged_into`: status, assignee, deadline,
  the answer);
- nobody else sees the row.

A reporter never appears: nothing here reads the encrypted reporter column.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter
from sqlalchemy import Connection, Engine, and_, or_, select

from phoihop_audit.access import Caller, scope_clause, visible_expr
from phoihop_audit.db import events, recommendations
from phoihop_audit.queries import period_bounds
from phoihop_audit.readmodel import iso, parse_time
from phoihop_audit.reports import GroupBy, Period, _label, _vn_date
from phoihop_common.access import Resource
from phoihop_common.config import Reference
from phoihop_schemas import lifecycle
from phoihop_schemas.events import Channel

TITLE = "TỔNG HỢP Ý KIẾN, KIẾN NGHỊ CỬ TRI"
SHEET = "Tổng hợp kiến nghị"
HEADER_ROW = 6
HEADERS = (
    "STT",
    "Nội dung kiến nghị",
    "Địa phương / nguồn (số lượt)",
    "Lĩnh vực",
    "Cơ quan giải quyết",
    "Hạn giải quyết",
    "Trạng thái",
    "Kết quả trả lời",
)
WIDTHS = (6, 60, 34, 22, 28, 14, 18, 60)
STATUS_NAMES: Mapping[str, str] = {
    "received": "Đã tiếp nhận",
    "triage": "Chờ phân loại",
    "assigned": "Đã chuyển giao",
    "accepted": "Đang giải quyết",
    "declined": "Chờ giao lại",
    "answered": "Đã trả lời",
    "reopened": "Mở lại, đang giải quyết",
    "closed": "Đã kết thúc",
    "merged": "Đã gộp",
}
UNKNOWN_STATUS = "Không rõ"
OVERDUE_SUFFIX = " (quá hạn)"
CHANNEL_NAMES: Mapping[str, str] = {
    Channel.TIEP_XUC_CU_TRI: "Tiếp xúc cử tri",
    Channel.UBMTTQ_TONG_HOP: "Ủy ban MTTQ tổng hợp",
    Channel.TIEP_CONG_DAN: "Tiếp công dân",
    Channel.DON_THU: "Đơn thư",
    Channel.CONG_THONG_TIN: "Cổng thông tin",
}
CSV_FIELDS = (
    "stt",
    "case_id",
    "kind",
    "text",
    "count",
    "localities",
    "locality_codes",
    "submitters",
    "submitter_codes",
    "category",
    "category_name",
    "level",
    "agency",
    "agency_name",
    "deadline",
    "deadline_date",
    "status",
    "status_name",
    "overdue",
    "answer_agency",
    "answer_date",
    "answer_text",
)
# Merges are one hop (into an open case); a longer chain is followed this far, no further.
MAX_HOPS = 8
CHUNK = 500


@dataclass(frozen=True)
class Selection:
    """Which recommendations make the batch."""

    period: Period
    channel: str | None = None
    submitted_by: str | None = None


@dataclass(frozen=True)
class Rec:
    """One read-model row and what the caller may read of it (never a reporter)."""

    id: str
    status: str | None
    kind: str | None
    channel: str | None
    locality: str | None
    category: str | None
    level: str | None
    agency: str | None
    submitted_by: str | None
    text: str | None
    received_at: datetime | None
    deadline: datetime | None
    duplicate_of: str | None
    see_status: bool
    see_text: bool
    see_answers: bool


@dataclass(frozen=True)
class Answer:
    """The latest answer given on a case."""

    agency: str | None
    text: str | None
    on_time: bool | None
    answered_at: datetime | None


# --------------------------------------------------------------------------- reading


def _columns(reference: Reference, caller: Caller) -> list[Any]:
    r = recommendations
    seen = {
        res: visible_expr(reference=reference, caller=caller, resource=res).label(f"see_{res}")
        for res in (Resource.STATUS, Resource.TEXT, Resource.ANSWERS)
    }
    return [
        r.c.id,
        r.c.status,
        r.c.kind,
        r.c.channel,
        r.c.locality,
        r.c.category,
        r.c.level,
        r.c.agency,
        r.c.submitted_by,
        r.c.text,
        r.c.received_at,
        r.c.deadline,
        r.c.duplicate_of,
        *seen.values(),
    ]


def _rec(row: Any) -> Rec:
    return Rec(
        id=row.id,
        status=row.status,
        kind=row.kind,
        channel=row.channel,
        locality=row.locality,
        category=row.category,
        level=row.level,
        agency=row.agency,
        submitted_by=row.submitted_by,
        text=row.text,
        received_at=row.received_at,
        deadline=row.deadline,
        duplicate_of=row.duplicate_of,
        see_status=bool(row.see_status),
        see_text=bool(row.see_text),
        see_answers=bool(row.see_answers),
    )


def _chunks(ids: Iterable[str]) -> Iterable[list[str]]:
    ordered = sorted(ids)
    for i in range(0, len(ordered), CHUNK):
        yield ordered[i : i + CHUNK]


def read_batch(
    conn: Connection,
    *,
    selection: Selection,
    caller: Caller,
    reference: Reference,
    tz: str,
) -> tuple[list[Rec], dict[str, Rec]]:
    """The batch's recommendations, and every row they lead to (merge targets included)."""
    r = recommendations
    start, end = period_bounds(selection.period.start, selection.period.end, tz=tz)
    conds: list[Any] = [r.c.received_at >= start, r.c.received_at < end]
    if selection.channel is not None:
        conds.append(r.c.channel == selection.channel)
    if selection.submitted_by is not None:
        conds.append(r.c.submitted_by == selection.submitted_by)
    scope = scope_clause(reference=reference, caller=caller)
    if scope is not None:  # one the caller may not read counts only in the case it went to
        conds.append(or_(scope, r.c.duplicate_of.is_not(None)))
    columns = _columns(reference, caller)
    members = [_rec(row) for row in conn.execute(select(*columns).where(and_(*conds)))]
    known = {m.id: m for m in members}
    wanted = {m.duplicate_of for m in members if m.duplicate_of is not None}
    for _hop in range(MAX_HOPS):
        missing = wanted - known.keys()
        if not missing:
            break
        found: list[Rec] = []
        for chunk in _chunks(missing):
            found += [_rec(row) for row in conn.execute(select(*columns).where(r.c.id.in_(chunk)))]
        known.update((f.id, f) for f in found)
        wanted = {f.duplicate_of for f in found if f.duplicate_of is not None}
    return members, known


def read_answers(conn: Connection, case_ids: Iterable[str]) -> dict[str, Answer]:
    """The latest answer of each case (by sequence), from the stored `answered` events."""
    e = events
    latest: dict[str, tuple[int, Answer]] = {}
    for chunk in _chunks(set(case_ids)):
        query = select(e.c.recommendation_id, e.c.sequence, e.c.data).where(
            e.c.recommendation_id.in_(chunk),
            e.c.type == "answered",
            e.c.sequence.is_not(None),
        )
        for row in conn.execute(query):
            seq = int(row.sequence)
            if row.recommendation_id in latest and latest[row.recommendation_id][0] >= seq:
                continue
            data = json.loads(row.data)
            answer = Answer(
                agency=data.get("agency"),
                text=data.get("text"),
                on_time=data.get("on_time"),
                answered_at=parse_time(data.get("occurred_at")),
            )
            latest[row.recommendation_id] = (seq, answer)
    return {k: v for k, (_, v) in latest.items()}


# --------------------------------------------------------------------------- building


def root_of(rec: Rec, known: Mapping[str, Rec]) -> str:
    """The open case a recommendation counts under (itself unless merged), chains followed."""
    seen = {rec.id}
    current = rec
    while current.duplicate_of is not None:
        target = known.get(current.duplicate_of)
        if target is None:  # merged into a case the read model does not hold
            return current.duplicate_of
        if target.id in seen:  # a cycle: stop where it closes
            return current.id
        seen.add(target.id)
        current = target
    return current.id


class _Labels:
    """Names from the reference data (memoised: the lookups scan lists)."""

    def __init__(self, reference: Reference) -> None:
        self.reference = reference
        self.cache: dict[tuple[GroupBy, str | None], str] = {}

    def __call__(self, what: GroupBy, code: str | None) -> str:
        key = (what, code)
        if key not in self.cache:
            self.cache[key] = _label(what, code, self.reference)
        return self.cache[key]


def local_date(moment: datetime | None, tz: str) -> str | None:
    """A naive UTC time as the local calendar date (ISO)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC).astimezone(ZoneInfo(tz)).date().isoformat()


def _tally(values: Iterable[str | None], what: GroupBy, labels: _Labels) -> list[dict[str, Any]]:
    counts = Counter(values)
    items = [{"code": c, "name": labels(what, c), "count": n} for c, n in counts.items()]
    return sorted(items, key=lambda i: (-i["count"], i["name"]))


def consolidate(
    members: Sequence[Rec],
    known: Mapping[str, Rec],
    answers: Mapping[str, Answer],
    *,
    reference: Reference,
    now: datetime,
    tz: str,
) -> list[dict[str, Any]]:
    """The rows: one per concern the caller may see, numbered (STT) in the filed order."""
    labels = _Labels(reference)
    groups: dict[str, list[Rec]] = {}
    for m in members:
        groups.setdefault(root_of(m, known), []).append(m)
    rows: list[dict[str, Any]] = []
    for case_id, group in groups.items():
        group.sort(key=lambda m: (m.received_at or datetime.min, m.id))
        case = known.get(case_id)
        if case is not None and case.see_status:
            shown = group
            text = case.text if case.see_text else None
            with_answer = case.see_answers
            kind, category, level = case.kind, case.category, case.level
        else:  # a source: only its own recommendations, and what their status says
            shown = [m for m in group if m.see_status]
            if not shown:
                continue
            text = next((m.text for m in shown if m.see_text), None)
            with_answer = any(m.see_answers for m in shown)
            kind, category, level = shown[0].kind, None, None
        status = case.status if case is not None else None
        deadline = case.deadline if case is not None else None
        overdue = lifecycle.is_overdue(status, deadline, now)
        agency = case.agency if case is not None else None
        given = answers.get(case_id) if with_answer else None
        rows.append(
            {
                "case_id": case_id,
                "kind": kind,
                "text": text,
                "count": len(shown),
                "localities": _tally((m.locality for m in shown), "locality", labels),
                "submitters": _tally((m.submitted_by for m in shown), "agency", labels),
                "channels": [
                    {"code": c or None, "name": CHANNEL_NAMES.get(c, c), "count": n}
                    for c, n in sorted(Counter(m.channel or "" for m in shown).items())
                ],
                "recommendation_ids": [m.id for m in shown if m.see_status],
                "first_received_at": iso(shown[0].received_at),
                "category": category,
                "category_name": labels("category", category),
                "level": level,
                "agency": agency,
                "agency_name": labels("agency", agency),
                "deadline": iso(deadline),
                "deadline_date": local_date(deadline, tz),
                "status": status,
                "status_name": STATUS_NAMES.get(status or "", UNKNOWN_STATUS)
                + (OVERDUE_SUFFIX if overdue else ""),
                "overdue": overdue,
                "answer": None
                if given is None
                else {
                    "agency": given.agency,
                    "agency_name": labels("agency", given.agency),
                    "text": given.text,
                    "on_time": given.on_time,
                    "answered_at": iso(given.answered_at),
                    "answered_date": local_date(given.answered_at, tz),
                },
            }
        )
    # Filed by field (lĩnh vực), unclassified last, then in the order first raised.
    rows.sort(
        key=lambda r: (
            r["category"] is None,
            r["category_name"],
            r["first_received_at"] or "",
            r["case_id"],
        )
    )
    for n, row in enumerate(rows, start=1):
        row["stt"] = n
    return rows


def build_list(
    engine: Engine,
    *,
    selection: Selection,
    caller: Caller,
    reference: Reference,
    now: datetime,
    tz: str = "Asia/Ho_Chi_Minh",
) -> dict[str, Any]:
    """The consolidated list of a batch, as the caller may read it (JSON form)."""
    with engine.connect() as conn:
        members, known = read_batch(
            conn, selection=selection, caller=caller, reference=reference, tz=tz
        )
        roots = {root_of(m, known) for m in members}
        answers = read_answers(conn, roots)
    rows = consolidate(members, known, answers, reference=reference, now=now, tz=tz)
    labels = _Labels(reference)
    return {
        "period": {
            "from": selection.period.start.isoformat(),
            "to": selection.period.end.isoformat(),
        },
        "channel": selection.channel,
        "channel_name": None
        if selection.channel is None
        else CHANNEL_NAMES.get(selection.channel, selection.channel),
        "submitted_by": selection.submitted_by,
        "submitted_by_name": None
        if selection.submitted_by is None
        else labels("agency", selection.submitted_by),
        "timezone": tz,
        "generated_at": now.isoformat() + "Z",
        "rows": rows,
        "total": {"concerns": len(rows), "raised": sum(r["count"] for r in rows)},
    }


# --------------------------------------------------------------------------- rendering


def _counted(items: Iterable[Mapping[str, Any]], key: str) -> str:
    return "; ".join(f"{i[key]} ({i['count']})" for i in items)


def _codes(items: Iterable[Mapping[str, Any]]) -> str:
    return ";".join(f"{i['code'] or ''}:{i['count']}" for i in items)


def to_csv(data: Mapping[str, Any]) -> str:
    """CSV: one line per concern (UTF-8, machine-readable headers; sources as `code:count`)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in data["rows"]:
        answer = row["answer"] or {}
        line = {
            **{k: row.get(k) for k in CSV_FIELDS},
            "localities": _counted(row["localities"], "name"),
            "locality_codes": _codes(row["localities"]),
            "submitters": _counted(row["submitters"], "name"),
            "submitter_codes": _codes(row["submitters"]),
            "answer_agency": answer.get("agency"),
            "answer_date": answer.get("answered_date"),
            "answer_text": answer.get("text"),
        }
        writer.writerow({k: "" if v is None else v for k, v in line.items()})
    return out.getvalue()


def _sources_cell(row: Mapping[str, Any]) -> str:
    return f"{_counted(row['localities'], 'name')}\nNguồn: {_counted(row['submitters'], 'name')}"


def _answer_cell(row: Mapping[str, Any]) -> str | None:
    answer = row["answer"]
    if answer is None or not answer["text"]:
        return None
    said = [answer["agency_name"]]
    if answer["answered_date"]:
        said.append(f"ngày {_vn_date(answer['answered_date'])}")
    return f"{answer['text']}\n({', '.join(said)})"


def _filters_line(data: Mapping[str, Any]) -> str:
    channel = data["channel_name"] or "tất cả"
    by = data["submitted_by_name"] or "tất cả"
    return f"Kênh: {channel}; Đơn vị gửi: {by}"


def to_xlsx(data: Mapping[str, Any]) -> bytes:
    """The Vietnamese consolidated list as an XLSX workbook."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = SHEET
    last_col = get_column_letter(len(HEADERS))
    thin = Side(style="thin")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    center = Alignment(horizontal="center", vertical="center", wrap_text=True)
    top = Alignment(vertical="top", wrap_text=True)
    period = data["period"]
    total = data["total"]
    span = f"{_vn_date(period['from'])} đến ngày {_vn_date(period['to'])}"
    lines = (
        (TITLE, Font(bold=True, size=14)),
        (f"Kỳ tổng hợp: từ ngày {span}", None),
        (_filters_line(data), None),
        (
            f"Tổng số: {total['concerns']} nội dung kiến nghị"
            f" ({total['raised']} lượt ý kiến, kiến nghị)",
            None,
        ),
    )
    for n, (text, font) in enumerate(lines, start=1):
        cell = ws.cell(row=n, column=1, value=text)
        cell.alignment = center
        if font is not None:
            cell.font = font
        ws.merge_cells(f"A{n}:{last_col}{n}")
    for col, text in enumerate(HEADERS, start=1):
        cell = ws.cell(row=HEADER_ROW, column=col, value=text)
        cell.font = Font(bold=True)
        cell.alignment = center
        cell.border = border
    for line, row in enumerate(data["rows"], start=HEADER_ROW + 1):
        values = (
            row["stt"],
            row["text"],
            _sources_cell(row),
            row["category_name"],
            row["agency_name"],
            _vn_date(row["deadline_date"]) if row["deadline_date"] else None,
            row["status_name"],
            _answer_cell(row),
        )
        for col, value in enumerate(values, start=1):
            cell = ws.cell(row=line, column=col, value=value)
            cell.border = border
            cell.alignment = top
    for col, width in enumerate(WIDTHS, start=1):
        ws.column_dimensions[get_column_letter(col)].width = width
    ws.row_dimensions[HEADER_ROW].height = 45
    ws.freeze_panes = ws.cell(row=HEADER_ROW + 1, column=3)
    ws.print_title_rows = f"{HEADER_ROW}:{HEADER_ROW}"
    ws.page_setup.orientation = "landscape"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
