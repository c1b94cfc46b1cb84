"""HTTP routes (thin): authenticate, parse, call the domain, answer."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.responses import Response

from phoihop_common.auth import API_KEY_HEADER
from phoihop_common.errors import (
    METRICS_ROUTE,
    REQUIRED_KEY,
    Health,
    error_responses,
)
from phoihop_common.http import READINESS_RESPONSES, Readiness, readiness_response
from phoihop_common.metrics import metrics_response
from phoihop_ingest import bulk, responses
from phoihop_ingest import openapi as docs
from phoihop_ingest.deps import Caller, CallerDep, Runtime, RuntimeDep, authenticate
from phoihop_ingest.exceptions import (
    BadRequestError,
    InvalidInputError,
    PayloadTooLargeError,
    UnavailableError,
    UnsupportedMediaTypeError,
)
from phoihop_ingest.submissions import RECEIVED_TOPIC, SOURCE, Pending, submit_many
from phoihop_ingest.validation import validate_submission
from phoihop_schemas import textpolicy
from phoihop_schemas.codec import MAX_KEY_CHARS, encode
from phoihop_schemas.events import Submission
from phoihop_schemas.topics import INBOUND_RESPONSES

router = APIRouter()
IDEMPOTENCY_HEADER = "Idempotency-Key"
_CHUNK = 64 * 1024


def idempotency_key(request: Request) -> str | None:
    """The `Idempotency-Key` header, checked."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_CHARS:
        raise InvalidInputError(
            "invalid_idempotency_key", f"{IDEMPOTENCY_HEADER} must have 1..{MAX_KEY_CHARS} chars"
        )
    try:
        return textpolicy.check_text(key)
    except ValueError as exc:
        raise InvalidInputError("invalid_idempotency_key", str(exc)) from exc


def check_json_media_type(request: Request) -> None:
    """415 unless the Content-Type is absent, `application/json` or `application/*+json`."""
    header = request.headers.get("content-type", "")
    media = header.split(";", 1)[0].strip().lower()
    if not media or media == "application/json":
        return
    if media.startswith("application/") and media.endswith("+json"):
        return
    raise UnsupportedMediaTypeError(
        "unsupported_media_type", f"send application/json, not {header[:100]!r}"
    )


async def read_json(request: Request, *, max_bytes: int) -> Any:
    """The JSON body (None when empty), refusing other media types, big or hostile bodies."""
    check_json_media_type(request)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise PayloadTooLargeError("payload_too_large", f"body over {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise PayloadTooLargeError("payload_too_large", f"body over {max_bytes} bytes")
    if not body.strip():
        return None
    try:
        return textpolicy.loads(body)
    except textpolicy.JsonPolicyError as exc:
        if exc.reason == "invalid_json":
            raise BadRequestError(exc.reason, exc.detail) from exc
        raise InvalidInputError(exc.reason, exc.detail) from exc


# --------------------------------------------------------------------------- submissions


SUBMIT_ERRORS = error_responses(
    400,
    401,
    413,
    415,
    422,
    503,
    notes={
        422: "The submission is invalid: `error` names the first problem (`unknown_locality`,"
        " `reporter_required`, `text_too_long`, `idempotency_key_reused` …), `detail` the"
        " fields.",
        503: "The broker or the database did not answer (`broker_unavailable`,"
        " `database_unavailable`): retry after `Retry-After` seconds with the same"
        " Idempotency-Key.",
    },
)
ACCEPTED_HEADERS = {
    "Idempotent-Replayed": {
        "description": "`true` when this is the answer to an earlier, identical submission",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


@router.post(
    "/v1/recommendations",
    status_code=202,
    tags=["submissions"],
    response_model=docs.Accepted,
    responses={202: {"headers": ACCEPTED_HEADERS}, **SUBMIT_ERRORS},
    openapi_extra=docs.json_body(Submission)
    | {"parameters": [docs.IDEMPOTENCY_PARAMETER], "security": REQUIRED_KEY},
)
async def submit(request: Request) -> JSONResponse:
    """Submit one recommendation; 202 `{id}` once the broker acknowledged it."""
    # The hot path resolves runtime and caller itself: FastAPI's dependency solving costs
    # more per request than the lookups (authentication still comes first, as elsewhere;
    # `security` above documents the same `X-API-Key` scheme the dependency declares).
    runtime: Runtime = request.app.state.runtime
    caller = authenticate(request.headers.get(API_KEY_HEADER), runtime)
    metrics = runtime.metrics
    settings = runtime.settings
    try:
        key = idempotency_key(request)
        payload = await read_json(request, max_bytes=settings.max_body_bytes)
        submission = validate_submission(
            payload=payload, reference=runtime.reference, max_text_chars=settings.max_text_chars
        )
    except (
        InvalidInputError,
        BadRequestError,
        PayloadTooLargeError,
        UnsupportedMediaTypeError,
    ):
        metrics.count("rejected")
        raise
    pending = Pending(submission=submission, agency=caller.agency, key=key or submission.source_ref)
    started = time.perf_counter()
    try:
        [outcome] = await submit_many(
            items=[pending],
            publisher=runtime.publisher,
            store=runtime.store,
            cipher=runtime.cipher,
        )
        metrics.processing(RECEIVED_TOPIC).observe(time.perf_counter() - started)
    except UnavailableError:
        metrics.count("unavailable")
        raise
    if outcome.id is None:
        metrics.count("rejected")
        raise InvalidInputError(outcome.error or "rejected", outcome.detail)
    metrics.count("duplicate" if outcome.duplicate else "accepted")
    headers = {"Idempotent-Replayed": "true"} if outcome.duplicate else None
    return JSONResponse({"id": outcome.id}, status_code=202, headers=headers)


BULK_INTERRUPTED = {
    "anyOf": [
        {"$ref": "#/components/schemas/ErrorBody"},
        {"$ref": "#/components/schemas/BulkReport"},
    ]
}
BULK_ERRORS = error_responses(
    400,
    401,
    413,
    415,
    422,
    503,
    notes={
        400: "A multipart body that cannot be parsed (`bad_request`).",
        413: "The file is over the limit (`payload_too_large`) or has too many rows"
        " (`too_many_rows`).",
        415: "The format is not JSON lines, CSV or XLSX (`unsupported_format`).",
        422: "The file cannot be read (`bad_encoding`, `missing_columns` …). When that (or the"
        " row limit) happens part way, the body is a `BulkReport` whose `error` says why:"
        " the rows before it stand.",
        503: "The broker did not answer: the rows so far are in the `BulkReport`; send the"
        " rest again (rows already accepted are recognised by their key).",
    },
)
for _status in (422, 503):
    BULK_ERRORS[_status]["content"] = {"application/json": {"schema": BULK_INTERRUPTED}}
    del BULK_ERRORS[_status]["model"]
BulkFormat = Annotated[
    str | None,
    Query(
        description="`jsonl`, `csv` or `xlsx`; by default from the Content-Type or the file name",
        max_length=10,
    ),
]


@router.post(
    "/v1/recommendations/bulk",
    tags=["submissions"],
    response_model=docs.BulkReport,
    responses=BULK_ERRORS,
    openapi_extra=docs.BULK_BODY | {"parameters": [docs.IDEMPOTENCY_PARAMETER]},
)
async def bulk_import(
    request: Request, runtime: RuntimeDep, caller: CallerDep, format: BulkFormat = None
) -> JSONResponse:
    """Import a batch (JSON lines, CSV or XLSX; raw body or multipart field `file`)."""
    settings = runtime.settings
    key = idempotency_key(request)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > settings.bulk_max_bytes:
        raise PayloadTooLargeError(
            "payload_too_large", f"body over {settings.bulk_max_bytes} bytes"
        )
    content_type = request.headers.get("content-type", "")
    filename: str | None = None
    chunks: AsyncIterator[bytes]
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_part_size=settings.bulk_max_bytes)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInputError("missing_file", "send the file in the form field `file`")
        filename, content_type = upload.filename, upload.content_type or ""
        chunks = _upload_chunks(upload)
    else:
        chunks = request.stream()
    fmt = bulk.detect_format(explicit=format, content_type=content_type, filename=filename)
    chunks = bulk.limited(chunks, max_bytes=settings.bulk_max_bytes)
    spool: Path | None = None
    try:
        if fmt == "jsonl":
            rows = bulk.jsonl_rows(chunks)
        else:
            # Spooled, then parsed in a worker thread: a large file never stalls the loop.
            spool = await bulk.spooled(chunks, suffix=f".{fmt}")
            parse = bulk.csv_rows if fmt == "csv" else bulk.xlsx_rows
            rows = bulk.in_thread(parse(spool))
        result = await bulk.run_import(
            rows=rows,
            agency=caller.agency,
            batch_key=key,
            reference=runtime.reference,
            max_text_chars=settings.max_text_chars,
            max_rows=settings.bulk_max_rows,
            batch_size=settings.bulk_batch_size,
            publisher=runtime.publisher,
            store=runtime.store,
            cipher=runtime.cipher,
            metrics=runtime.metrics,
        )
    finally:
        if spool is not None:
            spool.unlink(missing_ok=True)
    if result.interrupted is None:
        return JSONResponse(result.body())
    if result.interrupted.endswith("_unavailable"):
        return JSONResponse(
            result.body(),
            status_code=503,
            headers={"Retry-After": str(settings.retry_after_seconds)},
        )
    return JSONResponse(result.body(), status_code=422)


async def _upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(_CHUNK):
        yield chunk


# --------------------------------------------------------------------------- responses


def _response_handler(
    segment: str,
) -> Callable[[Request, str, Runtime, Caller], Awaitable[JSONResponse]]:
    async def handler(
        request: Request, recommendation_id: str, runtime: RuntimeDep, caller: CallerDep
    ) -> JSONResponse:
        settings = runtime.settings
        key = idempotency_key(request)
        payload = await read_json(request, max_bytes=settings.max_body_bytes)
        body = responses.parse_body(
            segment=segment,
            payload=payload,
            reference=runtime.reference,
            max_text_chars=settings.max_text_chars,
        )
        rec_id = responses.check_id(recommendation_id)
        responses.check_role(segment=segment, caller=caller.agency, reference=runtime.reference)
        status = await runtime.audit.status(recommendation_id=rec_id, api_key=caller.key)
        responses.check_assignee(
            segment=segment, caller=caller.agency, status=status, reference=runtime.reference
        )
        other_id = responses.correction_other(segment=segment, body=body, status=status)
        if other_id is not None:
            # the other case must exist and be visible to the caller (404 otherwise)
            other = await runtime.audit.status(recommendation_id=other_id, api_key=caller.key)
            responses.check_correction(
                segment=segment,
                caller=caller.agency,
                status=status,
                other=other,
                reference=runtime.reference,
            )
        response_id = responses.response_id(
            agency=caller.agency, recommendation_id=rec_id, segment=segment, key=key
        )
        message = responses.build_response(
            segment=segment,
            body=body,
            caller=caller.agency,
            recommendation_id=rec_id,
            response_id=response_id,
        )
        record = encode(message, source=SOURCE, event_id=response_id)
        await runtime.publisher.publish(INBOUND_RESPONSES.name, [record])
        return JSONResponse({"response_id": response_id}, status_code=202)

    handler.__name__ = f"respond_{segment}"
    handler.__doc__ = f"`{segment}`: put the agency's response on the inbound responses topic."
    return handler


RESPONSE_ERRORS = error_responses(
    400,
    401,
    403,
    404,
    409,
    413,
    415,
    422,
    503,
    notes={
        403: "Only the assignee may do this (`not_assignee`), or the action needs a role"
        " the caller lacks (`forbidden_role`). Corrections (`merge_into`, `unmerge`,"
        " `not_duplicate`): the assignee of either case, a supervisor or a triage body.",
        404: "No such recommendation (or `target`) visible to the caller"
        " (`unknown_recommendation`).",
        409: "The case's status does not allow it: `invalid_transition` (merge a case that"
        " is not open), `target_not_open`, `not_merged` (unmerge a case that is not merged).",
        503: "Audit or the broker did not answer: retry after `Retry-After` seconds.",
    },
)
WHO = {
    "assignee": "the agency the recommendation is assigned to",
    "corrector": "the assignee of this case or of the other case, a supervisor or a triage body",
    "triage": "a triage body",
    "supervisor": "a supervisor",
}

for _segment, (_action, _model, _who) in responses.ACTIONS.items():
    router.add_api_route(
        f"/v1/recommendations/{{recommendation_id}}/{_segment}",
        _response_handler(_segment),
        methods=["POST"],
        status_code=202,
        tags=["responses"],
        response_model=docs.ResponseAccepted,
        responses=RESPONSE_ERRORS,
        description=f"`{_action.value}`, by {WHO.get(_who, _who)}.",
        openapi_extra=docs.json_body(_model) | {"parameters": [docs.IDEMPOTENCY_PARAMETER]},
    )


# --------------------------------------------------------------------------- operations


@router.get("/healthz", tags=["operations"], response_model=Health)
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", tags=["operations"], response_model=Readiness, responses=READINESS_RESPONSES)
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """200 once the producer and consumer are started and the database answers."""
    return readiness_response(await runtime.ready())


@router.get("/metrics", tags=["operations"], **METRICS_ROUTE)
async def metrics() -> Response:
    """Prometheus metrics."""
    return metrics_response()


__all__ = ["router"]
