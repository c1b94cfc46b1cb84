"""Period reports (báo cáo sơ kết, tổng kết): numbers by agency, category or locality.

Cohort rule: a report for a period counts the recommendations *received* in that period and
says what has become of them (merged, assigned, answered, on time, overdue now, escalated).
Days to answer run from receipt to the first answer; the median is the usual middle value,
p90 the nearest-rank 90th percentile.

People's corrections of duplicate decisions are counted by when they were made: the last
columns count those made in the period (merged by hand, wrong merges undone, suggestions
dismissed), each under the group of the case it was made on.
"""

from __future__ import annotations

import calendar
import csv
import io
import math
import re
import statistics
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter
from sqlalchemy import Engine, and_, select

from phoihop_audit import corrections
from phoihop_audit.access import Caller, scope_clause
from phoihop_audit.db import recommendations
from phoihop_audit.exceptions import BadRequestError
from phoihop_audit.queries import MAX_DATE, MIN_DATE, period_bounds
from phoihop_audit.readmodel import OVERDUE_STATUSES
from phoihop_common.config import Reference

GroupBy = Literal["agency", "category", "locality"]
TITLE = "TỔNG HỢP KẾT QUẢ GIẢI QUYẾT KIẾN NGHỊ CỬ TRI"
GROUP_HEADERS = {"agency": "Cơ quan giải quyết", "category": "Lĩnh vực", "locality": "Địa bàn"}
UNKNOWN_LABEL = {"agency": "Chưa giao", "category": "Chưa phân loại", "locality": "Không rõ"}
COLUMNS: tuple[tuple[str, str], ...] = (
    ("received", "Tổng số tiếp nhận"),
    ("merged", "Gộp trùng"),
    ("assigned", "Đã chuyển giao"),
    ("answered", "Đã trả lời"),
    ("answered_on_time", "Trả lời đúng hạn"),
    ("overdue", "Quá hạn (hiện tại)"),
    ("escalated", "Đã đôn đốc, chuyển cấp"),
    ("median_days", "Số ngày trả lời (trung vị)"),
    ("p90_days", "Số ngày trả lời (P90)"),
)
# Corrections of duplicate decisions made in the period, after every other column.
CORRECTION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("merged_by_hand", "Gộp trùng thủ công"),
    ("unmerged", "Hủy gộp trùng"),
    ("dismissed", "Xác nhận không trùng"),
)
_COUNTED = {"merge_into": "merged_by_hand", "unmerge": "unmerged", "not_duplicate": "dismissed"}
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")


@dataclass(frozen=True)
class Period:
    """Inclusive calendar dates (local to the deployment's time zone)."""

    start: date
    end: date


def parse_period(
    *, date_from: date | None, date_to: date | None, month: str | None, quarter: str | None
) -> Period:
    """A period from `from`/`to`, `month=2026-05` or `quarter=2026-Q2`."""
    given = sum(x is not None for x in (month, quarter)) + (
        1 if date_from is not None or date_to is not None else 0
    )
    if given != 1:
        raise BadRequestError("bad_period", "give exactly one of from/to, month or quarter")
    if month is not None:
        m = _MONTH.match(month)
        if not m:
            raise BadRequestError("bad_period", f"month must look like 2026-05, got {month!r}")
        y, mo = _year(m[1]), int(m[2])
        return Period(date(y, mo, 1), date(y, mo, calendar.monthrange(y, mo)[1]))
    if quarter is not None:
        q = _QUARTER.match(quarter)
        if not q:
            raise BadRequestError("bad_period", f"quarter must look like 2026-Q2, got {quarter!r}")
        y, n = _year(q[1]), int(q[2])
        last = 3 * n
        return Period(date(y, last - 2, 1), date(y, last, calendar.monthrange(y, last)[1]))
    if date_from is None or date_to is None or date_to < date_from:
        raise BadRequestError("bad_period", "need from <= to")
    return Period(date_from, date_to)


def _year(text: str) -> int:
    year = int(text)
    if not MIN_DATE.year <= year <= MAX_DATE.year:
        raise BadRequestError(
            "bad_period", f"the year must lie within {MIN_DATE.year}..{MAX_DATE.year}"
        )
    return year


def p90(values: list[float]) -> float | None:
    """Nearest-rank 90th percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


@dataclass
class Row:
    """Numbers of one group."""

    key: str | None
    name: str
    received: int = 0
    merged: int = 0
    assigned: int = 0
    answered: int = 0
    answered_on_time: int = 0
    overdue: int = 0
    escalated: int = 0
    merged_by_hand: int = 0
    unmerged: int = 0
    dismissed: int = 0
    days: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        median = statistics.median(self.days) if self.days else None
        high = p90(self.days)
        return {
            "key": self.key,
            "name": self.name,
            "received": self.received,
            "merged": self.merged,
            "assigned": self.assigned,
            "answered": self.answered,
            "answered_on_time": self.answered_on_time,
            "overdue": self.overdue,
            "escalated": self.escalated,
            "median_days": None if median is None else round(median, 2),
            "p90_days": None if high is None else round(high, 2),
            "on_time_ratio": round(self.answered_on_time / self.answered, 4)
            if self.answered
            else None,
            "merged_by_hand": self.merged_by_hand,
            "unmerged": self.unmerged,
            "dismissed": self.dismissed,
        }


def _label(group_by: GroupBy, key: str | None, reference: Reference) -> str:
    if key is None:
        return UNKNOWN_LABEL[group_by]
    try:
        if group_by == "agency":
            return reference.agency(key).name
        if group_by == "category":
            return reference.category(key).name
        return reference.unit(key).name
    except KeyError:
        return key


def build_report(
    engine: Engine,
    *,
    period: Period,
    group_by: GroupBy,
    caller: Caller,
    reference: Reference,
    now: datetime,
    tz: str = "Asia/Ho_Chi_Minh",
) -> dict[str, Any]:
    """The report's numbers (rows sorted by name, plus the total)."""
    r = recommendations
    start, end = period_bounds(period.start, period.end, tz=tz)
    conds: list[Any] = [r.c.received_at >= start, r.c.received_at < end]
    scope = scope_clause(reference=reference, caller=caller)  # only cases it may read
    if scope is not None:
        conds.append(scope)
    with engine.connect() as conn:
        rows = conn.execute(select(r).where(and_(*conds))).all()
        corrected = corrections.stored(conn, scope=scope, start=start, end=end)
    groups: dict[str | None, Row] = {}
    total = Row(key=None, name="Tổng cộng")

    def group(key: str | None) -> Row:
        row = groups.get(key)
        if row is None:
            row = groups[key] = Row(key=key, name=_label(group_by, key, reference))
        return row

    for rec in rows:
        row = group(getattr(rec, group_by))
        for target in (row, total):
            target.received += 1
            target.merged += int(rec.status == "merged" or rec.duplicate_of is not None)
            target.assigned += int(rec.first_assigned_at is not None)
            if rec.answered_at is not None:
                target.answered += 1
                target.answered_on_time += int(bool(rec.answered_on_time))
                if rec.answer_days is not None:
                    target.days.append(float(rec.answer_days))
            target.overdue += int(
                rec.status in OVERDUE_STATUSES and rec.deadline is not None and rec.deadline < now
            )
            target.escalated += int((rec.escalation_level or 0) >= 1)
    for found in corrected:
        column = _COUNTED[found.action]
        for target in (group(getattr(found, group_by)), total):
            setattr(target, column, getattr(target, column) + 1)
    ordered = sorted(groups.values(), key=lambda g: (g.key is None, g.name))
    return {
        "period": {"from": period.start.isoformat(), "to": period.end.isoformat()},
        "group_by": group_by,
        "timezone": tz,
        "generated_at": now.isoformat() + "Z",
        "rows": [g.as_dict() for g in ordered],
        "total": total.as_dict(),
    }


def to_csv(report: dict[str, Any]) -> str:
    """CSV: one line per group and a total line (UTF-8, machine-readable headers)."""
    out = io.StringIO()
    fields = [
        "key",
        "name",
        *(c for c, _ in COLUMNS),
        "on_time_ratio",
        *(c for c, _ in CORRECTION_COLUMNS),
    ]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in [*report["rows"], {**report["total"], "key": "TOTAL"}]:
        writer.writerow({k: "" if row[k] is None else row[k] for k in fields})
    return out.getvalue()


def _vn_date(text: str) -> str:
    return date.fromisoformat(text).strftime("%d/%m/%Y")


def to_xlsx(report: dict[str, Any]) -> bytes:
    """The Vietnamese summary table supervisors file, as an XLSX workbook."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Tổng hợp"
    columns = (*COLUMNS, *CORRECTION_COLUMNS)
    headers = ["STT", GROUP_HEADERS[report["group_by"]], *(h for _, h in columns)]
    width = len(headers)
    last_col = get_column_letter(width)
    bold = Font(bold=True)
    thin = Side(style="thin")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    center = Alignment(horizontal="center", vertical="center", wrap_text=True)

    ws["A1"] = TITLE
    ws["A1"].font = Font(bold=True, size=14)
    ws["A1"].alignment = center
    ws.merge_cells(f"A1:{last_col}1")
    period = report["period"]
    ws["A2"] = f"Kỳ báo cáo: từ ngày {_vn_date(period['from'])} đến ngày {_vn_date(period['to'])}"
    ws["A2"].alignment = center
    ws.merge_cells(f"A2:{last_col}2")
    ws["A3"] = f"Tổng hợp theo: {GROUP_HEADERS[report['group_by']].lower()}"
    ws["A3"].alignment = center
    ws.merge_cells(f"A3:{last_col}3")

    header_row = 5
    for col, text in enumerate(headers, start=1):
        cell = ws.cell(row=header_row, column=col, value=text)
        cell.font = bold
        cell.alignment = center
        cell.border = border
    line = header_row
    for n, row in enumerate(report["rows"], start=1):
        line += 1
        values = [n, row["name"], *(row[c] for c, _ in columns)]
        for col, value in enumerate(values, start=1):
            ws.cell(row=line, column=col, value=value).border = border
    line += 1
    total = report["total"]
    for col, value in enumerate(["", "Tổng cộng", *(total[c] for c, _ in columns)], start=1):
        cell = ws.cell(row=line, column=col, value=value)
        cell.font = bold
        cell.border = border
    ws.column_dimensions["A"].width = 6
    ws.column_dimensions["B"].width = 42
    for col in range(3, width + 1):
        ws.column_dimensions[get_column_letter(col)].width = 16
    ws.row_dimensions[header_row].height = 45
    ws.freeze_panes = ws.cell(row=header_row + 1, column=3)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
