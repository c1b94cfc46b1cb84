"""What every HTTP service shares: headers, the `/metrics` token, `/readyz`, local API docs.

`install(app, metrics_token=...)` wraps a FastAPI (Starlette) app in
`SecurityHeadersMiddleware` (pure ASGI: streaming responses pass through untouched) and
gives an unhandled error's 500 the same headers (and the `{"error", "detail"}` body of
`phoihop_common.errors`). A header the route set itself is kept. (`Cache-Control: no-store`
is the routes' business: they set it where a reporter is shown.)

`Readiness` is the one body of every service's `/readyz` (routing's too, which is not
FastAPI: `readiness(...).model_dump(mode="json")` with `.http_status`).

`install_docs(app)` serves Swagger UI and ReDoc from the assets the `fastapi-offline`
package ships, never from a CDN: offline networks get working `/docs` and `/redoc`.

`service_app(...)` builds the FastAPI app of an HTTP service (ingest, notify, audit) the
one way: its OpenAPI title and tags, the HTTP metrics middleware, the security headers and
metrics token, the error handlers of `phoihop_common.errors`, the local docs and routers.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, SecretStr
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.base import DispatchFunction
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from fastapi import APIRouter, FastAPI

    from phoihop_common.errors import ErrorMapper

METRICS_PATH = "/metrics"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# JSON, CSV, XLSX and metrics: nothing to load, never framed
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# HTML is only /docs (Swagger UI) and /redoc: their assets are served by the service itself
# (`install_docs`), with one inline bootstrap script and a blob: worker (ReDoc)
DOCS_CSP = (
    "default-src 'none'; "
    "script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; "
    "font-src 'self' data:; "
    "img-src 'self' data:; "
    "connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'"
)


def security_headers(*, content_type: str) -> dict[str, str]:
    """The headers for a response of this content type (the CSP depends on it)."""
    csp = DOCS_CSP if content_type.lower().startswith("text/html") else API_CSP
    return {**SECURITY_HEADERS, "Content-Security-Policy": csp}


def metrics_authorized(*, token: SecretStr | None, authorization: str | None) -> bool:
    """True when no token is configured or `Authorization: Bearer <token>` presents it."""
    if token is None:
        return True
    scheme, _, presented = (authorization or "").partition(" ")
    expected = token.get_secret_value().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), expected)


METRICS_TOKEN_REQUIRED = "metrics_token_required"


def _error(reason: str, detail: str | None) -> bytes:
    # the body of phoihop_common.errors.ErrorBody, without importing FastAPI here
    return json.dumps({"error": reason, "detail": detail}).encode()


def metrics_refusal() -> Response:
    """The 401 of a scrape without the metrics token."""
    headers = {"WWW-Authenticate": 'Bearer realm="metrics"'}
    headers.update(security_headers(content_type="application/json"))
    body = _error(METRICS_TOKEN_REQUIRED, "send the metrics token as `Authorization: Bearer`")
    return Response(body, status_code=401, headers=headers, media_type="application/json")


class SecurityHeadersMiddleware:
    """ASGI middleware: security headers on every response, bearer token on `/metrics`."""

    def __init__(self, app: ASGIApp, *, metrics_token: SecretStr | None = None) -> None:
        self.app = app
        self.metrics_token = metrics_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == METRICS_PATH and not metrics_authorized(
            token=self.metrics_token, authorization=Headers(scope=scope).get("authorization")
        ):
            await metrics_refusal()(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                wanted = security_headers(content_type=headers.get("content-type", ""))
                for name, value in wanted.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _server_error(_request: Request, _exc: Exception) -> Response:
    # Starlette's ServerErrorMiddleware sends this outside every user middleware
    return Response(
        _error("internal_error", None),
        status_code=500,
        headers=security_headers(content_type="application/json"),
        media_type="application/json",
    )


def install(app: Starlette, *, metrics_token: SecretStr | None = None) -> None:
    """Add the security headers (and the metrics token, when set) to every response."""
    app.add_middleware(SecurityHeadersMiddleware, metrics_token=metrics_token)
    app.add_exception_handler(Exception, _server_error)


# --------------------------------------------------------------------------- readiness

ReadyStatus = Literal["ready", "not_ready", "starting"]


class Readiness(BaseModel):
    """The body of every service's `/readyz`: 200 when `ready`, else 503."""

    status: ReadyStatus = Field(description="`ready` (200), `not_ready` or `starting` (503)")
    reason: str | None = Field(
        default=None,
        description="machine-readable cause when not ready, e.g. `database_not_ready`,"
        " `consumer_stuck`, `starting`",
    )
    detail: str | None = Field(default=None, description="the cause in words")
    checks: dict[str, bool] = Field(
        default_factory=dict, description="each part the service needs, and whether it is up"
    )

    @property
    def http_status(self) -> int:
        """200 when ready, else 503."""
        return 200 if self.status == "ready" else 503


def readiness(
    checks: Mapping[str, bool] | None = None,
    *,
    problem: tuple[str, str | None] | None = None,
    starting: bool = False,
) -> Readiness:
    """Readiness from named checks, a `(reason, detail)` problem, or `starting`."""
    parts = dict(checks or {})
    if starting:
        return Readiness(status="starting", reason="starting", detail="starting up", checks=parts)
    failed = [name for name, ok in parts.items() if not ok]
    if failed:
        return Readiness(
            status="not_ready",
            reason=f"{failed[0]}_not_ready",
            detail="not ready: " + ", ".join(failed),
            checks=parts,
        )
    if problem is not None:
        reason, detail = problem
        return Readiness(status="not_ready", reason=reason, detail=detail, checks=parts)
    return Readiness(status="ready", checks=parts)


def readiness_response(ready: Readiness) -> JSONResponse:
    """`ready` as the `/readyz` answer (200 or 503)."""
    return JSONResponse(ready.model_dump(mode="json"), status_code=ready.http_status)


READINESS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Ready."},
    503: {"model": Readiness, "description": "Not ready, or still starting."},
}

# --------------------------------------------------------------------------- API docs

DOCS_ASSETS = "/docs/assets"


def docs_assets_dir() -> Path:
    """Swagger UI's and ReDoc's JS, CSS and favicon, as the `fastapi-offline` wheel ships them."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def install_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Serve Swagger UI at `docs_url` and ReDoc at `redoc_url` from local assets.

    Build the app with `docs_url=None, redoc_url=None` (FastAPI's own pages load from a CDN).
    """
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    if app.docs_url or app.redoc_url:
        raise ValueError("create the app with docs_url=None, redoc_url=None")
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(DOCS_ASSETS, StaticFiles(directory=docs_assets_dir()), name="docs-assets")

    async def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            # no badge fetched from validator.swagger.io
            swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
        )

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )

    app.add_api_route(docs_url, swagger, methods=["GET"], include_in_schema=False)
    app.add_api_route(redoc_url, redoc, methods=["GET"], include_in_schema=False)


# --------------------------------------------------------------------------- the app

Lifespan = Callable[["FastAPI"], AbstractAsyncContextManager[None]]
# the exception mappers of `phoihop_common.errors.install_error_handlers`, or a function
# installing the service's handlers itself
ErrorHandlers = Mapping[type[Exception], "ErrorMapper"] | Callable[["FastAPI"], None]


def service_app(
    *,
    title: str,
    summary: str,
    description: str,
    version: str,
    lifespan: Lifespan,
    tags: list[dict[str, Any]],
    http_metrics: Middleware | DispatchFunction,
    metrics_token: SecretStr | None,
    errors: ErrorHandlers | None = None,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """The FastAPI app of an HTTP service, built the way every service builds it.

    `http_metrics` counts and times requests: a dispatch function (as `app.middleware("http")`
    takes it) or a pure ASGI `Middleware`; the security headers (`install`) wrap it, and the
    metrics token guards `/metrics`. `errors` become `ErrorBody` answers
    (`install_error_handlers`); Swagger UI and ReDoc are served locally (`install_docs`);
    `routers` are included in order. What only one service has (webhooks, its OpenAPI
    additions, state) is added to the returned app by that service.
    """
    from fastapi import FastAPI

    from phoihop_common.errors import install_error_handlers

    app = FastAPI(
        title=title,
        summary=summary,
        description=description,
        version=version,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_tags=tags,
    )
    if isinstance(http_metrics, Middleware):
        app.add_middleware(http_metrics.cls, *http_metrics.args, **http_metrics.kwargs)
    else:
        app.middleware("http")(http_metrics)
    install(app, metrics_token=metrics_token)
    if errors is None or isinstance(errors, Mapping):
        install_error_handlers(app, errors)
    else:
        errors(app)
    install_docs(app)
    for router in routers:
        app.include_router(router)
    return app
