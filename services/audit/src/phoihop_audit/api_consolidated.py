"""`GET /v1/reports/consolidated`: the consolidated list as JSON, CSV or XLSX (X-API-Key).

The same access as `/v1/reports` (the caller's `X-API-Key`; supervisors see every case, an
agency the cases it submitted or handles); the rows are built by `consolidated`.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from phoihop_audit import consolidated, queries, reports
from phoihop_audit import openapi as docs
from phoihop_audit.api import (
    BAD_PERIOD,
    Code,
    DateFrom,
    DateTo,
    Month,
    Quarter,
    rendered,
)
from phoihop_audit.deps import CallerDep, RuntimeDep
from phoihop_common.errors import error_responses
from phoihop_schemas.events import Channel

router = APIRouter()


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class Counted(_Out):
    """A locality, a submitting agency or a channel, and how many times it raised the concern."""

    code: str | None
    name: str
    count: int


class GivenAnswer(_Out):
    """The latest answer on the case (once, although it goes to every source)."""

    agency: str | None
    agency_name: str
    text: str | None
    on_time: bool | None
    answered_at: docs.Timestamp | None
    answered_date: str | None = Field(description="local calendar date (ISO)")


class ConcernRow(_Out):
    """One distinct concern: an open case and the recommendations of the batch merged in it."""

    stt: int = Field(description="row number (số thứ tự)")
    case_id: str = Field(description="the case the concern is settled in")
    kind: str | None
    text: str | None = Field(description="null where the caller may not read the text")
    count: int = Field(description="how many recommendations of the batch raised it")
    localities: list[Counted]
    submitters: list[Counted]
    channels: list[Counted]
    recommendation_ids: list[str] = Field(description="those of the batch the caller may read")
    first_received_at: docs.Timestamp | None
    category: str | None
    category_name: str
    level: str | None
    agency: str | None = Field(description="the competent body (the case's assignee)")
    agency_name: str
    deadline: docs.Timestamp | None
    deadline_date: str | None = Field(description="local calendar date (ISO)")
    status: str | None
    status_name: str
    overdue: bool
    answer: GivenAnswer | None


class ConsolidatedTotal(_Out):
    """How many concerns, and how many recommendations raised them."""

    concerns: int
    raised: int


class ConsolidatedList(_Out):
    """Tổng hợp ý kiến, kiến nghị cử tri: each distinct concern of the batch once."""

    period: docs.Period
    channel: str | None
    channel_name: str | None
    submitted_by: str | None
    submitted_by_name: str | None
    timezone: str
    generated_at: docs.Timestamp
    rows: list[ConcernRow]
    total: ConsolidatedTotal


FILES: dict[str, Any] = {
    "text/csv": {
        "schema": {"type": "string"},
        "example": ",".join(consolidated.CSV_FIELDS) + "\n",
    },
    docs.XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}},
}


@router.get(
    "/v1/reports/consolidated",
    tags=["reports"],
    response_model=ConsolidatedList,
    responses={
        200: {"content": FILES, "description": "The consolidated list (`format`)."},
        **error_responses(400, 401, 422, notes=BAD_PERIOD),
    },
)
def consolidated_list(
    rt: RuntimeDep,
    who: CallerDep,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    month: Month = None,
    quarter: Quarter = None,
    channel: Channel | None = None,
    submitted_by: Code = None,
    format: Literal["json", "csv", "xlsx"] = "json",
) -> dict[str, Any] | Response:
    """Each distinct concern of a batch once, with every locality and source that raised it.

    The batch: recommendations received in the period (`from`/`to`, `month` or `quarter`),
    optionally of one `channel` and/or one submitting agency (`submitted_by`). A merged group
    is one row; its answer is shown once. No reporter ever appears.
    """
    period = reports.parse_period(
        date_from=date_from, date_to=date_to, month=month, quarter=quarter
    )
    selection = consolidated.Selection(
        period=period,
        channel=None if channel is None else channel.value,
        submitted_by=submitted_by,
    )
    data = consolidated.build_list(
        rt.engine,
        selection=selection,
        caller=who,
        reference=rt.reference,
        now=queries.utcnow(),
        tz=rt.settings.timezone,
    )
    name = f"tong-hop-kien-nghi-{period.start.isoformat()}-{period.end.isoformat()}"
    return rendered(
        data, format=format, name=name, csv=consolidated.to_csv, xlsx=consolidated.to_xlsx
    )
