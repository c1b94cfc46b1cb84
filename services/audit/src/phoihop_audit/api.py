"""HTTP routes (thin): authenticate, call the read side, shape the response."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from phoihop_audit import db, log, queries, reports
from phoihop_audit.access import Caller
from phoihop_audit.app import Runtime
from phoihop_audit.exceptions import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    TooManyRequestsError,
)
from phoihop_audit.keys import public_key_b64
from phoihop_common.auth import API_KEY_HEADER
from phoihop_common.metrics import metrics_response

router = APIRouter()


class UnauthorizedError(Exception):
    """No or unknown API key."""


def runtime(request: Request) -> Runtime:
    """The app's shared runtime."""
    rt: Runtime = request.app.state.rt
    return rt


def caller(
    request: Request,
    x_api_key: Annotated[str | None, Header(alias=API_KEY_HEADER)] = None,
) -> Caller:
    """The agency presenting `X-API-Key`."""
    rt = runtime(request)
    agency = rt.api_keys.agency_for(x_api_key)
    if agency is None:
        raise UnauthorizedError
    return Caller(agency=agency)


RuntimeDep = Annotated[Runtime, Depends(runtime)]
CallerDep = Annotated[Caller, Depends(caller)]

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


HTTP_REASONS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


def install_handlers(app: FastAPI) -> None:
    """Errors as `{"error": reason, "detail": ...}`."""

    async def unauthorized(_r: Request, _e: Exception) -> JSONResponse:
        return JSONResponse(
            {"error": "unauthorized", "detail": f"valid {API_KEY_HEADER} required"}, 401
        )

    async def not_found(_r: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "not_found", "detail": str(exc)}, 404)

    async def bad_request(_r: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, BadRequestError)
        return JSONResponse({"error": exc.reason, "detail": exc.detail}, 400)

    async def invalid(_r: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        detail = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return JSONResponse({"error": "invalid_request", "detail": detail}, 422)

    async def http_error(_r: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)  # unknown route, method not allowed
        reason = HTTP_REASONS.get(exc.status_code, "http_error")
        body = {"error": reason, "detail": exc.detail}
        return JSONResponse(body, exc.status_code, headers=exc.headers)

    app.add_exception_handler(UnauthorizedError, unauthorized)
    app.add_exception_handler(NotFoundError, not_found)
    app.add_exception_handler(BadRequestError, bad_request)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    install_public_handlers(app)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """200 once the database answers and the consumer has partitions."""
    rt: Runtime | None = getattr(request.app.state, "rt", None)
    if rt is None:
        return JSONResponse({"ready": False, "reason": "starting"}, 503)
    if not await asyncio.to_thread(db.ping, rt.engine):
        return JSONResponse({"ready": False, "reason": "database"}, 503)
    if not rt.consuming:
        return JSONResponse({"ready": False, "reason": "consumer_not_assigned"}, 503)
    problem = rt.consumer_problem()
    if problem is not None:
        return JSONResponse({"ready": False, "reason": "consumer_stuck", "detail": problem}, 503)
    return JSONResponse({"ready": True})


@router.get("/metrics")
async def metrics(rt: RuntimeDep) -> Response:
    """Prometheus exposition (business gauges recomputed from the read model)."""
    await asyncio.to_thread(rt.metrics.refresh, rt.engine)
    return metrics_response()


@router.get("/v1/recommendations")
def search(
    rt: RuntimeDep,
    who: CallerDep,
    agency: Code = None,
    locality: Code = None,
    category: Code = None,
    kind: Code = None,
    status: Code = None,
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


@router.get("/v1/recommendations/{rec_id}", response_model=None)
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


@router.get("/v1/recommendations/{rec_id}/trail", response_model=None)
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


SUPERVISOR_ROLE = "supervisor"


def install_public_handlers(app: FastAPI) -> None:
    """403 and 429 (with Retry-After) of the public audit endpoints."""

    async def forbidden(_r: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "forbidden", "detail": str(exc)}, 403)

    async def too_many(_r: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TooManyRequestsError)
        body = {"error": "too_many_requests", "detail": exc.detail}
        return JSONResponse(body, 429, headers={"Retry-After": str(exc.retry_after)})

    app.add_exception_handler(ForbiddenError, forbidden)
    app.add_exception_handler(TooManyRequestsError, too_many)


def _require_supervisor(rt: Runtime, api_key: str | None) -> None:
    agency = rt.api_keys.agency_for(api_key)
    if agency is None:
        raise UnauthorizedError
    if SUPERVISOR_ROLE not in rt.reference.agency(agency).role:
        raise ForbiddenError("a full verification needs a supervisor's key")


@router.get("/v1/audit/verify")
def verify(
    rt: RuntimeDep,
    full: Annotated[bool, Query(description="re-hash every record (supervisor key)")] = False,
    x_api_key: Annotated[str | None, Header(alias=API_KEY_HEADER)] = None,
) -> dict[str, Any]:
    """The last signed checkpoint (public); `full=true` re-hashes the whole log, rate-limited."""
    if not full:
        return log.verify_latest_checkpoint(rt.engine, signer=rt.signer)
    _require_supervisor(rt, x_api_key)
    return rt.full_verify.run(lambda: log.verify_log(rt.engine, signer=rt.signer))


@router.get("/v1/audit/checkpoints")
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


@router.get("/v1/audit/proof/inclusion")
def inclusion_proof(
    rt: RuntimeDep,
    event_id: Annotated[str, Query(min_length=1, max_length=100, pattern=_NO_CONTROLS)],
    tree_size: Annotated[int | None, Query(ge=1, le=MAX_TREE_SIZE)] = None,
) -> dict[str, Any]:
    """RFC 6962 audit path of one event in the tree of `tree_size` (public, cached)."""
    return log.inclusion(rt.engine, event_id=event_id, tree_size=tree_size, cache=rt.proofs)


@router.get("/v1/audit/proof/consistency")
def consistency_proof(
    rt: RuntimeDep,
    first: TreeSize,
    second: TreeSize,
) -> dict[str, Any]:
    """RFC 6962 consistency proof between two checkpoints (public, cached)."""
    return log.consistency(rt.engine, first=first, second=second, cache=rt.proofs)


@router.get("/v1/audit/reconciliation")
def reconciliation(rt: RuntimeDep, who: CallerDep) -> dict[str, Any]:
    """Recommendations whose sequence numbers have a hole."""
    return queries.reconciliation(rt.engine, caller=who, reference=rt.reference)


@router.get("/v1/reports", response_model=None)
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
    if format == "csv":
        return Response(
            reports.to_csv(data).encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    if format == "xlsx":
        return Response(
            reports.to_xlsx(data),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
        )
    return data
