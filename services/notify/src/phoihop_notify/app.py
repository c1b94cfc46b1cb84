"""Wiring: the FastAPI app, its lifespan (the runtime) and the health endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, Response

from phoihop_common.errors import METRICS_ROUTE, ApiError, Health, install_error_handlers
from phoihop_common.http import (
    READINESS_RESPONSES,
    Readiness,
    install_docs,
    readiness,
    readiness_response,
)
from phoihop_common.http import install as install_security_headers
from phoihop_common.metrics import metrics_response
from phoihop_notify import openapi
from phoihop_notify.api import router
from phoihop_notify.channels import Channel
from phoihop_notify.exceptions import (
    NotFoundError,
    NotifyError,
    ScopeNotAllowedError,
    UrlNotAllowedError,
)
from phoihop_notify.metrics import notify_metrics
from phoihop_notify.runtime import Runtime
from phoihop_notify.settings import NotifySettings

STATUS = {NotFoundError: 404, ScopeNotAllowedError: 403}


def _notify_error(exc: NotifyError) -> ApiError:
    detail = exc.detail
    if isinstance(exc, UrlNotAllowedError) and "private" in detail:
        detail = (
            f"{detail} (private networks are refused unless the operator allows them in"
            f" {openapi.ALLOWED_NETWORKS_ENV})"
        )
    return ApiError(STATUS.get(type(exc), 422), exc.reason, detail)


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

    app = FastAPI(
        title="phoihop notify",
        summary="Webhook subscriptions, deliveries and replays; the webhooks it sends.",
        description=openapi.DESCRIPTION,
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_tags=openapi.TAGS,
    )
    app.middleware("http")(metrics.service.http_middleware)
    install_security_headers(app, metrics_token=settings.metrics_token)
    install_error_handlers(app, {NotifyError: _notify_error})
    install_docs(app)
    app.include_router(router)
    openapi.install_webhooks(app, settings)

    @app.get("/healthz", tags=["operations"], response_model=Health)
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get(
        "/readyz", tags=["operations"], response_model=Readiness, responses=READINESS_RESPONSES
    )
    async def readyz(request: Request) -> JSONResponse:
        """200 once Kafka clients run, partitions are assigned and the database answers."""
        runtime: Runtime | None = getattr(request.app.state, "runtime", None)
        if runtime is None:
            return readiness_response(readiness(starting=True))
        return readiness_response(await runtime.ready())

    @app.get("/metrics", tags=["operations"], **METRICS_ROUTE)
    async def metrics_endpoint() -> Response:
        """Prometheus exposition."""
        return metrics_response()

    return app
