"""Wiring: the FastAPI app, its lifespan (the runtime) and the health endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import JSONResponse, Response

from phoihop_common.metrics import metrics_response
from phoihop_notify.api import ApiError, error_response, router
from phoihop_notify.channels import Channel
from phoihop_notify.exceptions import NotFoundError, NotifyError, ScopeNotAllowedError
from phoihop_notify.metrics import notify_metrics
from phoihop_notify.runtime import Runtime
from phoihop_notify.settings import NotifySettings

STATUS = {NotFoundError: 404, ScopeNotAllowedError: 403}


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
    app.include_router(router)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.reason, exc.detail)

    @app.exception_handler(NotifyError)
    async def _notify_error(_request: Request, exc: NotifyError) -> JSONResponse:
        return error_response(STATUS.get(type(exc), 422), exc.reason, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail: Any = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()]
        return error_response(422, "invalid_request", detail)

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
