"""Wiring: settings, reference data, keys, database, producer, consumer, HTTP app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from phoihop_common.auth import ApiKeys
from phoihop_common.config import Reference, load_reference
from phoihop_common.db import make_engine
from phoihop_common.http import install as install_security_headers
from phoihop_common.logs import get_logger
from phoihop_common.pii import PiiCipher, load_pii_cipher
from phoihop_ingest.audit_client import AuditClient
from phoihop_ingest.auth import KeyIndex
from phoihop_ingest.consumer import InboundConsumer
from phoihop_ingest.exceptions import IngestError, StoreUnavailableError, UnavailableError
from phoihop_ingest.idempotency import IdempotencyStore
from phoihop_ingest.metrics import HttpMetricsMiddleware, IngestMetrics, ingest_metrics
from phoihop_ingest.publisher import Publisher
from phoihop_ingest.settings import IngestSettings

log = get_logger(__name__)
HTTP_REASONS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


@dataclass
class Runtime:
    """Everything a request handler needs, built once per app."""

    settings: IngestSettings
    reference: Reference
    keys: KeyIndex
    engine: Engine
    store: IdempotencyStore
    publisher: Publisher
    cipher: PiiCipher
    consumer: InboundConsumer
    audit: AuditClient
    metrics: IngestMetrics
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(cls, settings: IngestSettings) -> Runtime:
        """Load config (fails fast on invalid reference data) and create the clients."""
        config = settings.config_path()
        reference = load_reference(config)
        metrics = ingest_metrics()
        engine = make_engine(settings.database_url)
        store = IdempotencyStore(engine)
        publisher = Publisher(settings=settings, metrics=metrics.service)
        cipher = load_pii_cipher(
            settings,
            service="ingest",
            production=settings.environment == "production",
            dev_dir=settings.pii_dev_dir,
        )
        return cls(
            settings=settings,
            reference=reference,
            keys=KeyIndex(ApiKeys.load(settings.api_keys_path())),
            engine=engine,
            store=store,
            publisher=publisher,
            cipher=cipher,
            consumer=InboundConsumer(
                settings=settings,
                reference=reference,
                publisher=publisher,
                store=store,
                cipher=cipher,
                metrics=metrics,
            ),
            audit=AuditClient(base_url=settings.audit_url, timeout=settings.audit_timeout),
            metrics=metrics,
        )

    async def init_db_forever(self) -> None:
        """Create the table, retrying until the database answers."""
        while not self.store.ready:
            try:
                await asyncio.to_thread(self.store.create_schema)
            except StoreUnavailableError as exc:
                log.warning("database_unreachable", error=str(exc.detail))
                await asyncio.sleep(1.0)

    def start(self) -> None:
        """Start background tasks: database, producer, inbound consumer."""
        self.tasks = [
            asyncio.create_task(self.init_db_forever(), name="ingest-db"),
            asyncio.create_task(self.publisher.connect_forever(), name="ingest-producer"),
            asyncio.create_task(self._consume(), name="ingest-consumer"),
        ]

    async def _consume(self) -> None:
        while True:
            try:
                await self.consumer.run()
            except asyncio.CancelledError:
                raise
            except Exception:  # a consumer bug must not stop ingest's HTTP side
                log.exception("inbound_consumer_crashed")
                await asyncio.sleep(1.0)

    async def ready(self) -> dict[str, bool]:
        """Readiness of each part."""
        db = self.store.ready and await asyncio.to_thread(self.store.ping)
        return {
            "producer": self.publisher.ready,
            "consumer": self.consumer.ready,
            "database": db,
        }

    async def stop(self) -> None:
        """Cancel tasks, flush the producer, close clients."""
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.publisher.close()
        await self.audit.close()
        self.engine.dispose()


def error_response(exc: IngestError, *, retry_after: int) -> JSONResponse:
    """`{"error": reason, "detail": ...}` with the error's status (Retry-After on 503)."""
    headers = {"Retry-After": str(retry_after)} if isinstance(exc, UnavailableError) else None
    return JSONResponse(
        {"error": exc.reason, "detail": exc.detail}, status_code=exc.status, headers=headers
    )


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    """The ingest FastAPI application."""
    from phoihop_ingest import openapi
    from phoihop_ingest.api import router

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

    app = FastAPI(
        title="phoihop ingest",
        summary="Submissions, bulk import and agencies' responses enter the bus here.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.add_middleware(HttpMetricsMiddleware, metrics=runtime.metrics.service)
    install_security_headers(app, metrics_token=settings.metrics_token)

    @app.exception_handler(IngestError)
    async def _ingest_error(_request: Request, exc: IngestError) -> JSONResponse:
        return error_response(exc, retry_after=settings.retry_after_seconds)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg")}
            for e in exc.errors()[:10]
        ]
        return JSONResponse({"error": "invalid_request", "detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        reason = HTTP_REASONS.get(exc.status_code, "http_error")
        return JSONResponse(
            {"error": reason, "detail": exc.detail},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    app.include_router(router)
    openapi.install(app, reference=runtime.reference)
    return app
