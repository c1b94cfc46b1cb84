"""Wiring: settings → database, keys, reference data, consumer, checkpointer, HTTP app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from phoihop_audit import api_consolidated, log, openapi
from phoihop_audit.api import install_handlers, router
from phoihop_audit.consumer import AuditConsumer
from phoihop_audit.runtime import Runtime, audit_metrics, build_runtime
from phoihop_audit.settings import AuditSettings
from phoihop_common.http import service_app
from phoihop_common.logs import get_logger

__all__ = ["Runtime", "audit_metrics", "build_runtime", "checkpoint_loop", "create_app"]

logger = get_logger(__name__)


async def checkpoint_loop(rt: Runtime) -> None:
    """Sign a checkpoint every `checkpoint_interval` seconds when the log has grown."""
    while True:
        await asyncio.sleep(rt.settings.checkpoint_interval)
        try:
            cp = await asyncio.to_thread(log.make_checkpoint, rt.engine, signer=rt.signer)
        except Exception:  # keep checkpointing after a transient database error
            logger.exception("checkpoint_failed")
            continue
        if cp is not None:
            logger.info("checkpoint", tree_size=cp.tree_size, root_hash=cp.root_hash)


def create_app(settings: AuditSettings | None = None, *, consume: bool = True) -> FastAPI:
    """The audit FastAPI app; `consume=False` serves the API without a Kafka consumer."""
    settings = settings or AuditSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = await asyncio.to_thread(build_runtime, settings)
        app.state.rt = rt
        if consume:
            rt.consumer = AuditConsumer(
                settings=settings, engine=rt.engine, cipher=rt.cipher, metrics=rt.metrics
            )
            await rt.consumer.start()
            rt.tasks.append(asyncio.create_task(rt.consumer.run(), name="audit-consumer"))
        rt.tasks.append(asyncio.create_task(checkpoint_loop(rt), name="audit-checkpoints"))
        logger.info("started", database=rt.engine.url.get_backend_name(), key_id=rt.signer.key_id)
        try:
            yield
        finally:
            for task in rt.tasks:
                task.cancel()
            for task in rt.tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if rt.consumer is not None:
                await rt.consumer.stop()
            rt.engine.dispose()
            logger.info("stopped")

    return service_app(
        title="phoihop audit",
        summary="The tamper-evident trail, case status, search, reports and public proofs.",
        description=openapi.DESCRIPTION,
        version="0.1.0",
        lifespan=lifespan,
        tags=openapi.TAGS,
        http_metrics=audit_metrics().service.http_middleware,
        metrics_token=settings.metrics_token,
        errors=install_handlers,
        routers=[router, api_consolidated.router],
    )
