"""Wiring: settings, reference data, keys, database, producer, consumer, HTTP app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.middleware import Middleware

from phoihop_common.errors import ApiError
from phoihop_common.http import service_app
from phoihop_ingest import openapi
from phoihop_ingest.api import router
from phoihop_ingest.exceptions import IngestError, StoreUnavailableError, UnavailableError
from phoihop_ingest.metrics import HttpMetricsMiddleware
from phoihop_ingest.runtime import Runtime
from phoihop_ingest.settings import IngestSettings

__all__ = ["Runtime", "api_error", "create_app"]


def api_error(exc: IngestError, *, retry_after: int) -> ApiError:
    """The error's status, reason and detail (Retry-After on 503), as every service answers."""
    headers = {"Retry-After": str(retry_after)} if isinstance(exc, UnavailableError) else None
    return ApiError(exc.status, exc.reason, exc.detail, headers=headers)


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    """The ingest FastAPI application."""
    settings = settings or IngestSettings()
    runtime = Runtime.build(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Usually the database answers at once: have the table before the first request.
        with contextlib.suppress(StoreUnavailableError):
            await asyncio.to_thread(runtime.store.create_schema)
        runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = service_app(
        title="phoihop ingest",
        summary="Submissions, bulk import and agencies' responses enter the bus here.",
        description=openapi.DESCRIPTION,
        version="0.1.0",
        lifespan=lifespan,
        tags=openapi.TAGS,
        http_metrics=Middleware(HttpMetricsMiddleware, metrics=runtime.metrics.service),
        metrics_token=settings.metrics_token,
        errors={IngestError: lambda exc: api_error(exc, retry_after=settings.retry_after_seconds)},
        routers=[router],
    )
    app.state.runtime = runtime
    openapi.install(app, reference=runtime.reference)
    return app
