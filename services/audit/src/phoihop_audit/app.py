"""Wiring: settings → database, keys, reference data, consumer, checkpointer, HTTP app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import cache

from fastapi import FastAPI
from sqlalchemy import Engine

from phoihop_audit import db, log
from phoihop_audit.consumer import AuditConsumer
from phoihop_audit.keys import PiiCipher, Signer, load_pii_cipher, load_signer
from phoihop_audit.metrics import AuditMetrics
from phoihop_audit.settings import AuditSettings
from phoihop_common.auth import ApiKeys
from phoihop_common.config import Reference, default_config_dir, load_reference
from phoihop_common.http import install as install_security_headers
from phoihop_common.logs import get_logger

logger = get_logger(__name__)


@cache
def audit_metrics() -> AuditMetrics:
    """The process's metrics (registered once even when several apps are built, as in tests)."""
    return AuditMetrics.create()


@dataclass
class Runtime:
    """Everything the request handlers and background tasks share."""

    settings: AuditSettings
    engine: Engine
    signer: Signer
    cipher: PiiCipher
    reference: Reference
    api_keys: ApiKeys
    metrics: AuditMetrics
    proofs: log.ProofCache = field(default_factory=log.ProofCache)
    full_verify: log.FullVerifyGate = field(default_factory=log.FullVerifyGate)
    consumer: AuditConsumer | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def consuming(self) -> bool:
        """True when the Kafka consumer has partitions (or is disabled for this app)."""
        if self.consumer is None:
            return True
        alive = all(not t.done() for t in self.tasks)
        return alive and self.consumer.assigned

    def consumer_problem(self) -> str | None:
        """Why the consumer counts as stuck (retrying the same records, or lag without commits)."""
        return None if self.consumer is None else self.consumer.kit.problem()


def build_runtime(settings: AuditSettings) -> Runtime:
    """Open the database (migrated), load keys and reference data."""
    config_dir = settings.config_dir or default_config_dir()
    engine = db.make_engine(settings.database_url)
    db.migrate(engine)
    return Runtime(
        settings=settings,
        engine=engine,
        signer=load_signer(settings),
        cipher=load_pii_cipher(settings),
        reference=load_reference(config_dir),
        api_keys=ApiKeys.load(settings.api_keys_path()),
        metrics=audit_metrics(),
        proofs=log.ProofCache(size=settings.proof_cache_size),
        full_verify=log.FullVerifyGate(per_minute=settings.full_verify_per_minute),
    )


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
    from phoihop_audit.api import install_handlers, router

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

    app = FastAPI(title="phoihop audit", version="0.1.0", lifespan=lifespan)
    app.middleware("http")(audit_metrics().service.http_middleware)
    install_security_headers(app, metrics_token=settings.metrics_token)
    install_handlers(app)
    app.include_router(router)
    return app
