"""Wiring: the FastAPI app, its lifespan (the runtime) and the health endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from phoihop_common.http import install as install_security_headers
from phoihop_common.metrics import metrics_response
from phoihop_notify.api import ApiError, error_response, router
from phoihop_notify.channels import Channel
from phoihop_notify.exceptions import NotFoundError, NotifyError, ScopeNotAllowedError
from phoihop_notify.metrics import notify_metrics
from phoihop_notify.runtime import Runtime
from phoihop_notify.settings import NotifySettings

STATUS = {NotFoundError: 404, ScopeNotAllowedError: 403}
HTTP_REASONS = {400: "invalid_json", 404: "not_found", 405: "method_not_allowed"}


def create_app(
    settings: NotifySettings | None = None, *, channels: Mapping[str, Channel] | None = None
) -> FastAPI:
    """The notify service as an ASGI app; `channels` replaces channels (test doubles)."""
    settings = settings or NotifySettings()
    metrics = notify_metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = await Runtime.start(settings, channels=channels)
        try:
            yield
        finally:
            await app.state.runtime.stop()

    app = FastAPI(title="phoihop notify", version="1", lifespan=lifespan)
    app.middleware("http")(metrics.service.http_middleware)
    install_security_headers(app, metrics_token=settings.metrics_token)
    app.include_router(router)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.reason, exc.detail)

    @app.exception_handler(NotifyError)
    async def _notify_error(_request: Request, exc: NotifyError) -> JSONResponse:
        return error_response(STATUS.get(type(exc), 422), exc.reason, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        detail: Any = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in errors]
        bad_json = any(e.get("type") == "json_invalid" for e in errors)
        return error_response(422, "invalid_json" if bad_json else "invalid_request", detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own 400 is a body it could not parse (bad UTF-8, too deeply nested...).
        reason = HTTP_REASONS.get(exc.status_code, "http_error")
        response = error_response(exc.status_code, reason, exc.detail)
        response.headers.update(exc.headers or {})
        return response

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        """200 once Kafka clients run, partitions are assigned and the database answers."""
        runtime: Runtime | None = getattr(request.app.state, "runtime", None)
        if runtime is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        ok, detail = await runtime.ready()
        return JSONResponse(
            {"status": "ready" if ok else "not_ready", "detail": detail},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        """Prometheus exposition."""
        return metrics_response()

    return app
