"""Wiring: the FastAPI app of notify, its lifespan (the runtime) and its error statuses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI

from phoihop_common.errors import ApiError
from phoihop_common.http import service_app
from phoihop_notify import openapi
from phoihop_notify.api import operations, router
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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = await Runtime.start(settings, channels=channels)
        try:
            yield
        finally:
            await app.state.runtime.stop()

    app = service_app(
        title="phoihop notify",
        summary="Webhook subscriptions, deliveries and replays; the webhooks it sends.",
        description=openapi.DESCRIPTION,
        version="1",
        lifespan=lifespan,
        tags=openapi.TAGS,
        http_metrics=notify_metrics().service.http_middleware,
        metrics_token=settings.metrics_token,
        errors={NotifyError: _notify_error},
        routers=[router, operations],
    )
    openapi.install_webhooks(app, settings)
    return app
