"""HTTP routes (thin): authenticate, call the read side, shape the response."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Path, Query, Request, Security
from fastapi.responses import JSONResponse, Response

from phoihop_audit import db, labelled, log, queries, reports
from phoihop_audit import openapi as docs
from phoihop_audit.deps import CallerDep, RuntimeDep
from phoihop_audit.exceptions import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    TooManyRequestsError,
)
from phoihop_audit.keys import public_key_b64
from phoihop_audit.runtime import Runtime
from phoihop_common.errors import (
    METRICS_ROUTE,
    OPTIONAL,
    ApiError,
    Health,
    api_key_header,
    error_responses,
    install_error_handlers,
    unauthorized,
)
from phoihop_common.http import READINESS_RESPONSES, Readiness, readiness, readiness_response
from phoihop_common.metrics import metrics_response
from phoihop_schemas import lifecycle

router = APIRouter()


# Bounds on every parameter: a value outside them is a 422, never an overflow in a date or
# the database. No control characters in codes and ids (PostgreSQL refuses NUL in text).
_NO_CONTROLS = r"^[^\x00-\x1f\x7f]*$"
_DATES = f"between {queries.MIN_DATE} and {queries.MAX_DATE}"
MAX_TREE_SIZE = 2**31
Code = Annotated[str | None, Query(max_length=100, pattern=_NO_CONTROLS)]
RecId = Annotated[str, Path(max_length=100, pattern=_NO_CONTROLS)]
DateFrom = Annotated[
    date | None,
    Query(alias="from", ge=queries.MIN_DATE, le=queries.MAX_DATE, description=_DATES),
]
DateTo = Annotated[
    date | None,
    Query(alias="to", ge=queries.MIN_DATE, le=queries.MAX_DATE, description=_DATES),
]
TreeSize = Annotated[int, Query(ge=1, le=MAX_TREE_SIZE)]
# The year is bounded here; a month or quarter number out of range stays a 400 `bad_period`.
Month = Annotated[str | None, Query(pattern=r"^(20\d\d|2100)-\d\d$", description="e.g. 2026-05")]
Quarter = Annotated[str | None, Query(pattern=r"^(20\d\d|2100)-Q\d$", description="e.g. 2026-Q2")]
SourceRef = Annotated[
    str | None,
    Query(
        max_length=200,
        pattern=_NO_CONTROLS,
        description="the submitter's own reference (`source_ref` of the submission)",
    ),
]

NOT_VISIBLE = {404: "No such recommendation visible to the caller (`not_found`)."}
BAD_PERIOD = {400: "The period is invalid (`bad_period`)."}
TOO_MANY = {429: "Proofs are being computed: retry after `Retry-After` seconds."}


def _bad_request(exc: BadRequestError) -> ApiError:
    return ApiError(400, exc.reason, exc.detail)


def _not_found(exc: NotFoundError) -> ApiError:
    return ApiError(404, "not_found", str(exc))


def _forbidden(exc: ForbiddenError) -> ApiError:
    return ApiError(403, "forbidden", str(exc))


def _too_many(exc: TooManyRequestsError) -> ApiError:
    return ApiError(
        429, "too_many_requests", exc.detail, headers={"Retry-After": str(exc.retry_after)}
    )


def install_handlers(app: FastAPI) -> None:
    """Errors as `{"error": reason, "detail": ...}` (phoihop_common.errors)."""
    install_error_handlers(
        app,
        {
            NotFoundError: _not_found,
            BadRequestError: _bad_request,
            ForbiddenError: _forbidden,
            TooManyRequestsError: _too_many,
        },
    )


@router.get("/healthz", tags=["operations"], response_model=Health)
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", tags=["operations"], response_model=Readiness, responses=READINESS_RESPONSES)
async def readyz(request: Request) -> JSONResponse:
    """200 once the database answers and the consumer has partitions."""
    rt: Runtime | None = getattr(request.app.state, "rt", None)
    if rt is None:
        return readiness_response(readiness(starting=True))
    checks = {
        "database": await asyncio.to_thread(db.ping, rt.engine),
        "consumer": rt.consuming,
    }
    problem = rt.consumer_problem()
    stuck = None if problem is None else ("consumer_stuck", problem)
    return readiness_response(readiness(checks, problem=stuck))


@router.get("/metrics", tags=["operations"], **METRICS_ROUTE)
async def metrics(rt: RuntimeDep) -> Response:
    """Prometheus exposition (business gauges recomputed from the read model)."""
    await asyncio.to_thread(rt.metrics.refresh, rt.engine)
    return metrics_response()


@router.get(
    "/v1/recommendations",
    tags=["recommendations"],
    response_model=docs.SearchPage,
    responses=error_responses(400, 401, 422, notes=BAD_PERIOD),
)
def search(
    rt: RuntimeDep,
    who: CallerDep,
    agency: Code = None,
    locality: Code = None,
    category: Code = None,
    kind: Code = None,
    status: Code = None,
    source_ref: SourceRef = None,
    overdue: bool | None = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    q: Annotated[str | None, Query(max_length=500)] = None,
    page: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=queries.MAX_PAGE_SIZE)] = 20,
) -> dict[str, Any]:
    """Search and filter recommendations in the caller's scope."""
    filters = queries.SearchFilters(
        agency=agency,
        locality=locality,
        category=category,
        kind=kind,
        status=status,
        source_ref=source_ref,
        overdue=overdue,
        date_from=date_from,
        date_to=date_to,
        q=q,
        page=page,
        page_size=page_size,
    )
    return queries.search(
        rt.engine, filters=filters, caller=who, reference=rt.reference, tz=rt.settings.timezone
    )


def _read(read: queries.Read) -> JSONResponse:
    """A read as JSON; one carrying a reporter is never stored by any cache."""
    headers = {"Cache-Control": "no-store"} if read.carries_reporter else None
    return JSONResponse(read.body, headers=headers)


# `reporter=false` reads a case without its reporter (and leaves no disclosure in the log).
WithReporter = Annotated[
    bool, Query(description="include the reporter when cleared (each such read is logged)")
]


@router.get(
    "/v1/recommendations/{rec_id}",
    tags=["recommendations"],
    response_model=docs.RecommendationStatus,
    responses=error_responses(401, 404, 422, notes=NOT_VISIBLE),
)
def get_status(
    rec_id: RecId, rt: RuntimeDep, who: CallerDep, reporter: WithReporter = True
) -> JSONResponse:
    """Current status of one recommendation."""
    read = queries.status(
        rt.engine,
        rec_id=rec_id,
        caller=who,
        reference=rt.reference,
        cipher=rt.cipher,
        with_reporter=reporter,
    )
    return _read(read)


@router.get(
    "/v1/recommendations/{rec_id}/trail",
    tags=["recommendations"],
    response_model=docs.Trail,
    responses=error_responses(401, 404, 422, notes=NOT_VISIBLE),
)
def get_trail(
    rec_id: RecId, rt: RuntimeDep, who: CallerDep, reporter: WithReporter = True
) -> JSONResponse:
    """Every stored event of one recommendation, by sequence."""
    read = queries.trail(
        rt.engine,
        rec_id=rec_id,
        caller=who,
        reference=rt.reference,
        cipher=rt.cipher,
        with_reporter=reporter,
    )
    return _read(read)


SUPERVISOR_ROLE = lifecycle.SUPERVISOR


def _require_supervisor(rt: Runtime, api_key: str | None) -> None:
    agency = rt.api_keys.agency_for(api_key)
    if agency is None:
        raise unauthorized(api_key)
    if SUPERVISOR_ROLE not in rt.reference.agency(agency).role:
        raise ForbiddenError("a full verification needs a supervisor's key")


@router.get(
    "/v1/audit/verify",
    tags=["proofs"],
    response_model=docs.Verification,
    response_model_exclude_unset=True,
    responses=error_responses(
        401,
        403,
        422,
        429,
        notes={
            401: "`full=true` without a key (`missing_api_key`) or with an unknown one.",
            403: "`full=true` needs a supervisor's key (`forbidden`).",
            429: "A full verification is running, or the per-minute limit is reached:"
            " retry after `Retry-After` seconds.",
        },
    ),
    # public, except `full=true`: the key is optional
    openapi_extra={"security": OPTIONAL},
)
def verify(
    rt: RuntimeDep,
    full: Annotated[bool, Query(description="re-hash every record (supervisor key)")] = False,
    x_api_key: Annotated[str | None, Security(api_key_header)] = None,
) -> dict[str, Any]:
    """The last signed checkpoint (public); `full=true` re-hashes the whole log, rate-limited."""
    if not full:
        return log.verify_latest_checkpoint(rt.engine, signer=rt.signer)
    _require_supervisor(rt, x_api_key)
    return rt.full_verify.run(lambda: log.verify_log(rt.engine, signer=rt.signer))


@router.get(
    "/v1/audit/checkpoints",
    tags=["proofs"],
    response_model=docs.Checkpoints,
    responses=error_responses(422),
)
def list_checkpoints(
    rt: RuntimeDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    """Signed checkpoints, newest first, and the key that signs them."""
    return {
        "origin": log.CHECKPOINT_ORIGIN,
        "key_id": rt.signer.key_id,
        "public_key": public_key_b64(rt.signer.public),
        "algorithm": "Ed25519",
        "checkpoints": [c.as_dict() for c in log.list_checkpoints(rt.engine, limit=limit)],
    }


@router.get(
    "/v1/audit/proof/inclusion",
    tags=["proofs"],
    response_model=docs.InclusionProof,
    responses=error_responses(
        404,
        422,
        429,
        notes={404: "The event is not stored, or no checkpoint of that size exists.", **TOO_MANY},
    ),
)
def inclusion_proof(
    rt: RuntimeDep,
    event_id: Annotated[str, Query(min_length=1, max_length=100, pattern=_NO_CONTROLS)],
    tree_size: Annotated[int | None, Query(ge=1, le=MAX_TREE_SIZE)] = None,
) -> dict[str, Any]:
    """RFC 6962 audit path of one event in the tree of `tree_size` (public, cached)."""
    return log.inclusion(rt.engine, event_id=event_id, tree_size=tree_size, cache=rt.proofs)


@router.get(
    "/v1/audit/proof/consistency",
    tags=["proofs"],
    response_model=docs.ConsistencyProof,
    responses=error_responses(
        400,
        404,
        422,
        429,
        notes={
            400: "`first` is larger than `second` (`bad_tree_size`).",
            404: "No checkpoint of that size.",
            **TOO_MANY,
        },
    ),
)
def consistency_proof(
    rt: RuntimeDep,
    first: TreeSize,
    second: TreeSize,
) -> dict[str, Any]:
    """RFC 6962 consistency proof between two checkpoints (public, cached)."""
    return log.consistency(rt.engine, first=first, second=second, cache=rt.proofs)


@router.get(
    "/v1/audit/reconciliation",
    tags=["recommendations"],
    response_model=docs.Reconciliation,
    responses=error_responses(401),
)
def reconciliation(rt: RuntimeDep, who: CallerDep) -> dict[str, Any]:
    """Recommendations whose sequence numbers have a hole."""
    return queries.reconciliation(rt.engine, caller=who, reference=rt.reference)


@router.get(
    "/v1/reports",
    tags=["reports"],
    response_model=docs.Report,
    responses={
        200: {"content": docs.REPORT_FILES, "description": "The report (`format`)."},
        **error_responses(400, 401, 422, notes=BAD_PERIOD),
    },
)
def report(
    rt: RuntimeDep,
    who: CallerDep,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    month: Month = None,
    quarter: Quarter = None,
    group_by: reports.GroupBy = "agency",
    format: Literal["json", "csv", "xlsx"] = "json",
) -> dict[str, Any] | Response:
    """Period report grouped by agency, category or locality, as JSON, CSV or XLSX."""
    period = reports.parse_period(
        date_from=date_from, date_to=date_to, month=month, quarter=quarter
    )
    data = reports.build_report(
        rt.engine,
        period=period,
        group_by=group_by,
        caller=who,
        reference=rt.reference,
        now=queries.utcnow(),
        tz=rt.settings.timezone,
    )
    name = f"bao-cao-{period.start.isoformat()}-{period.end.isoformat()}-{group_by}"
    return rendered(data, format=format, name=name, csv=reports.to_csv, xlsx=reports.to_xlsx)


def rendered(
    data: dict[str, Any],
    *,
    format: Literal["json", "csv", "xlsx"],
    name: str,
    csv: Callable[[dict[str, Any]], str],
    xlsx: Callable[[dict[str, Any]], bytes],
) -> dict[str, Any] | Response:
    """A report as JSON (the dict itself) or as a CSV / XLSX download named `name`."""
    if format == "csv":
        body, media_type = csv(data).encode("utf-8"), "text/csv; charset=utf-8"
    elif format == "xlsx":
        body, media_type = xlsx(data), docs.XLSX_TYPE
    else:
        return data
    disposition = f'attachment; filename="{name}.{format}"'
    return Response(body, media_type=media_type, headers={"Content-Disposition": disposition})


@router.get(
    "/v1/reports/labelled-pairs",
    tags=["reports"],
    response_model=docs.LabelledPairs,
    responses={
        200: {
            "content": {docs.JSONL_TYPE: {"schema": {"type": "string"}}},
            "description": "The pairs as JSON, or as JSON Lines (`format=jsonl`): one pair"
            " object per line.",
        },
        **error_responses(
            400,
            401,
            403,
            422,
            notes={**BAD_PERIOD, 403: "Needs a supervisor's or a triage body's key (`forbidden`)."},
        ),
    },
)
def labelled_pairs(
    rt: RuntimeDep,
    who: CallerDep,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    month: Month = None,
    quarter: Quarter = None,
    format: Literal["json", "jsonl"] = "json",
) -> dict[str, Any] | Response:
    """Pairs of cases people decided were duplicates or not, with both texts.

    Each correction of a duplicate decision labels a pair: `merge_into` says `duplicate`,
    `unmerge` and `not_duplicate` say `not_duplicate`; a pair counts once, with its latest
    decision, in the period (`from`/`to`, `month` or `quarter`) that decision was made in.
    Supervisors and triage bodies only.
    """
    labelled.require_role(reference=rt.reference, caller=who)
    period = reports.parse_period(
        date_from=date_from, date_to=date_to, month=month, quarter=quarter
    )
    data = labelled.build_pairs(
        rt.engine, period=period, caller=who, reference=rt.reference, tz=rt.settings.timezone
    )
    if format == "json":
        return data
    name = f"cap-trung-{period.start.isoformat()}-{period.end.isoformat()}.jsonl"
    return Response(
        labelled.to_jsonl(data).encode("utf-8"),
        media_type=docs.JSONL_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
