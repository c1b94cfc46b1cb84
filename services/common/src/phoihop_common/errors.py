"""One error model for every HTTP service: `{"error": <reason>, "detail": ...}`.

`error` is a machine-readable reason (`missing_api_key`, `invalid_json`, `not_found` …);
`detail` explains it in words, or lists the offending fields as `{field, message}` items, or
is null. `install_error_handlers(app)` makes FastAPI's own refusals (unknown route, wrong
method, a body that is not JSON, a parameter out of bounds) answer in that shape, and maps a
service's own exceptions onto it; `error_responses(...)` documents the statuses of a route
with the same schema, so the OpenAPI document says what the service answers.

The API key: `api_key_header` is the `X-API-Key` security scheme (`apiKey` in the OpenAPI
document). A request without the header is `401 missing_api_key`, an unknown key
`401 invalid_api_key`, in every service.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from phoihop_common.auth import API_KEY_HEADER

MAX_ITEMS = 20
MAX_TEXT = 500
SECURITY_SCHEME = "apiKey"
MISSING_API_KEY = "missing_api_key"
INVALID_API_KEY = "invalid_api_key"
INVALID_JSON = "invalid_json"
INVALID_REQUEST = "invalid_request"
ERROR_BODY_REF = "#/components/schemas/ErrorBody"
# FastAPI raises HTTPException(400) with this detail when it cannot parse a body.
_PARSE_ERROR = "There was an error parsing the body"
HTTP_REASONS: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: INVALID_REQUEST,
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class ErrorItem(BaseModel):
    """One offending field of a refused request."""

    model_config = ConfigDict(frozen=True)

    field: str = Field(
        description="where: a dotted path such as `body.reporter.phone` or `query.limit`"
    )
    message: str = Field(description="what is wrong with it")


class ErrorBody(BaseModel):
    """The body of every 4xx and 5xx answer of every phoihop HTTP service."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"error": "invalid_api_key", "detail": "unknown API key"},
                {
                    "error": "invalid_request",
                    "detail": [{"field": "query.limit", "message": "Input should be ≤ 1000"}],
                },
            ]
        }
    )

    error: str = Field(description="machine-readable reason, e.g. `missing_api_key`")
    detail: str | list[ErrorItem] | None = Field(
        default=None, description="explanation, or the offending fields"
    )


class ApiError(Exception):
    """An error answered as `ErrorBody` with `status` (and `headers`, e.g. Retry-After)."""

    def __init__(
        self,
        status: int,
        reason: str,
        detail: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {reason}: {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail
        self.headers = dict(headers or {})


def _printable(text: str, limit: int = MAX_TEXT) -> str:
    # a message may quote the input, lone surrogates included
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")[:limit]


def _item(value: Any) -> dict[str, str]:
    if isinstance(value, ErrorItem):
        return value.model_dump()
    if isinstance(value, Mapping):
        if "field" in value or "message" in value:
            field, message = value.get("field", ""), value.get("message", "")
        else:  # pydantic / FastAPI error dicts
            loc = value.get("loc", ())
            field = ".".join(str(p) for p in loc) if isinstance(loc, list | tuple) else str(loc)
            message = value.get("msg", "")
        return {"field": _printable(str(field)), "message": _printable(str(message))}
    return {"field": "", "message": _printable(str(value))}


def normalize_detail(detail: Any) -> str | list[dict[str, str]] | None:
    """`detail` as the model allows it: None, a string, or `{field, message}` items."""
    if detail is None:
        return None
    if isinstance(detail, str):
        return _printable(detail, 2000)
    if isinstance(detail, list | tuple):
        return [_item(v) for v in list(detail)[:MAX_ITEMS]]
    if isinstance(detail, Mapping | ErrorItem):
        return [_item(detail)]
    return _printable(str(detail), 2000)


def error_body(reason: str, detail: Any = None) -> dict[str, Any]:
    """The JSON-ready `ErrorBody`."""
    return {"error": reason, "detail": normalize_detail(detail)}


def error_response(
    status: int, reason: str, detail: Any = None, *, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """`ErrorBody` as a response."""
    return JSONResponse(
        error_body(reason, detail), status_code=status, headers=dict(headers or {}) or None
    )


def validation_items(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """pydantic's errors as `ErrorItem`s (`field` = the dotted location)."""
    return [_item(e) for e in list(errors)[:MAX_ITEMS]]


# --------------------------------------------------------------------------- API key

api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    scheme_name=SECURITY_SCHEME,
    description=(
        "The agency's API key. Without it the answer is `401 missing_api_key`, with an"
        " unknown one `401 invalid_api_key`."
    ),
    auto_error=False,
)


def unauthorized(key: str | None) -> ApiError:
    """The 401 of a missing or unknown key."""
    if not key:
        return ApiError(401, MISSING_API_KEY, f"send the agency's key in {API_KEY_HEADER}")
    return ApiError(401, INVALID_API_KEY, "unknown API key")


# `openapi_extra={"security": REQUIRED_KEY}`: a route that authenticates without the
# dependency (a hot path). `openapi_extra={"security": OPTIONAL}` on a route with the
# dependency: FastAPI appends it to the requirement, which makes the key optional.
REQUIRED_KEY: list[dict[str, list[str]]] = [{SECURITY_SCHEME: []}]
OPTIONAL: list[dict[str, list[str]]] = [{}]


# --------------------------------------------------------------------------- documentation

DESCRIPTIONS: dict[int, str] = {
    400: "The body is not valid JSON (`invalid_json`).",
    401: "No `X-API-Key` (`missing_api_key`) or an unknown one (`invalid_api_key`).",
    403: "The caller's agency may not do this.",
    404: "Unknown, or not visible to the caller (`not_found`).",
    409: "Conflicts with the current state.",
    413: "The body is larger than the limit (`payload_too_large`).",
    415: "The body's media type is not accepted (`unsupported_media_type`).",
    422: "A parameter or the body is invalid; `detail` names the fields.",
    429: "Too many requests for now: retry after `Retry-After` seconds.",
    503: "A dependency is unavailable: retry after `Retry-After` seconds.",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "schema": {"type": "integer"},
    }
}


def error_responses(
    *statuses: int, notes: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """`responses=` of a route: each status with the `ErrorBody` schema and what it means."""
    notes = notes or {}
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "model": ErrorBody,
            "description": notes.get(status) or DESCRIPTIONS.get(status) or "Error",
        }
        if status in (429, 503):
            entry["headers"] = dict(_RETRY_AFTER)
        documented[status] = entry
    return documented


# --------------------------------------------------------------------------- operations

metrics_bearer = HTTPBearer(
    scheme_name="metricsToken",
    description="The metrics token (`PHOIHOP_<SERVICE>_METRICS_TOKEN`), when one is set.",
    auto_error=False,
)


class Health(BaseModel):
    """`/healthz`: the process is alive."""

    status: str = Field(default="ok", examples=["ok"])


# `@router.get("/metrics", **METRICS_ROUTE)`: the Prometheus text format, and the bearer
# token the middleware of phoihop_common.http asks for when the deployment sets one.
METRICS_ROUTE: dict[str, Any] = {
    "response_class": PlainTextResponse,
    "responses": {
        200: {
            "description": "Prometheus text exposition format (version 0.0.4).",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        # spelled out: a `model` would be documented as the route's text/plain (the
        # component itself is there through the other routes' error responses)
        401: {
            "description": "A metrics token is configured and the request did not present"
            " it (`metrics_token_required`).",
            "content": {"application/json": {"schema": {"$ref": ERROR_BODY_REF}}},
        },
    },
    "dependencies": [Security(metrics_bearer)],
    # the token is optional: without a configured token anyone may scrape
    "openapi_extra": {"security": OPTIONAL},
}


# --------------------------------------------------------------------------- handlers

ErrorMapper = Callable[[Any], ApiError]


def _reason_of_http(exc: StarletteHTTPException) -> str:
    if exc.status_code == 400 and exc.detail == _PARSE_ERROR:
        return INVALID_JSON
    return HTTP_REASONS.get(exc.status_code, "http_error")


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.reason, exc.detail, headers=exc.headers)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = None if exc.detail == HTTP_REASONS.get(exc.status_code) else exc.detail
    return error_response(
        exc.status_code, _reason_of_http(exc), detail, headers=getattr(exc, "headers", None)
    )


async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors: Sequence[Any] = exc.errors()
    if any(isinstance(e, Mapping) and e.get("type") == "json_invalid" for e in errors):
        return error_response(400, INVALID_JSON, validation_items(errors))
    return error_response(422, INVALID_REQUEST, validation_items(errors))


def install_error_handlers(
    app: FastAPI, mappers: Mapping[type[Exception], ErrorMapper] | None = None
) -> None:
    """Every refusal as `ErrorBody`: FastAPI's own, `ApiError`, and the service's exceptions.

    `mappers` turns each of the service's exception classes into an `ApiError` (status,
    reason, detail, headers).
    """
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    for kind, mapper in (mappers or {}).items():
        app.add_exception_handler(kind, _mapped(mapper))


def _mapped(mapper: ErrorMapper) -> Callable[[Request, Exception], Any]:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return await _api_error(request, mapper(exc))

    return handler


__all__ = [
    "INVALID_API_KEY",
    "METRICS_ROUTE",
    "MISSING_API_KEY",
    "OPTIONAL",
    "REQUIRED_KEY",
    "SECURITY_SCHEME",
    "ApiError",
    "ErrorBody",
    "ErrorItem",
    "Health",
    "api_key_header",
    "error_body",
    "error_response",
    "error_responses",
    "install_error_handlers",
    "normalize_detail",
    "unauthorized",
    "validation_items",
]
