"""HTTP routes (thin): authenticate, call the read side, shape the response."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from phoihop_audit import db, log, queries, reports
from phoihop_audit.access import Caller, caller_for
from phoihop_audit.app import Runtime
from phoihop_audit.exceptions import BadRequestError, NotFoundError
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
    return caller_for(agency, rt.reference)


RuntimeDep = Annotated[Runtime, Depends(runtime)]
CallerDep = Annotated[Caller, Depends(caller)]


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

    app.add_exception_handler(UnauthorizedError, unauthorized)
    app.add_exception_handler(NotFoundError, not_found)
    app.add_exception_handler(BadRequestError, bad_request)
    app.add_exception_handler(RequestValidationError, invalid)


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
    try:
        await asyncio.to_thread(db.ping, rt.engine)
    except SQLAlchemyError as exc:
        return JSONResponse({"ready": False, "reason": "database", "detail": str(exc)[:200]}, 503)
    if not rt.consuming:
        return JSONResponse({"ready": False, "reason": "consumer_not_assigned"}, 503)
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
    agency: str | None = None,
    locality: str | None = None,
    category: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    overdue: bool | None = None,
    date_from: Annotated[date | None, Query(alias="from")] = None,
    date_to: Annotated[date | None, Query(alias="to")] = None,
    q: Annotated[str | None, Query(max_length=500)] = None,
    page: Annotated[int, Query(ge=1)] = 1,
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
    return queries.search(rt.engine, filters=filters, caller=who, tz=rt.settings.timezone)


@router.get("/v1/recommendations/{rec_id}")
def get_status(rec_id: str, rt: RuntimeDep, who: CallerDep) -> dict[str, Any]:
    """Current status of one recommendation."""
    return queries.status(
        rt.engine, rec_id=rec_id, caller=who, reference=rt.reference, cipher=rt.cipher
    )


@router.get("/v1/recommendations/{rec_id}/trail")
def get_trail(rec_id: str, rt: RuntimeDep, who: CallerDep) -> dict[str, Any]:
    """Every stored event of one recommendation, by sequence."""
    return queries.trail(
        rt.engine, rec_id=rec_id, caller=who, reference=rt.reference, cipher=rt.cipher
    )


@router.get("/v1/audit/verify")
def verify(rt: RuntimeDep) -> dict[str, Any]:
    """Re-check the chain, the head and every checkpoint's root and signature."""
    return log.verify_log(rt.engine, signer=rt.signer)


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
    event_id: Annotated[str, Query(min_length=1, max_length=100)],
    tree_size: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    """RFC 6962 audit path of one event in the tree of `tree_size`."""
    return log.inclusion(rt.engine, event_id=event_id, tree_size=tree_size)


@router.get("/v1/audit/proof/consistency")
def consistency_proof(
    rt: RuntimeDep,
    first: Annotated[int, Query(ge=1)],
    second: Annotated[int, Query(ge=1)],
) -> dict[str, Any]:
    """RFC 6962 consistency proof between two checkpoints."""
    return log.consistency(rt.engine, first=first, second=second)


@router.get("/v1/audit/reconciliation")
def reconciliation(rt: RuntimeDep, who: CallerDep) -> dict[str, Any]:
    """Recommendations whose sequence numbers have a hole."""
    return queries.reconciliation(rt.engine, caller=who)


@router.get("/v1/reports", response_model=None)
def report(
    rt: RuntimeDep,
    who: CallerDep,
    date_from: Annotated[date | None, Query(alias="from")] = None,
    date_to: Annotated[date | None, Query(alias="to")] = None,
    month: str | None = None,
    quarter: str | None = None,
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
