"""What ingest starts and stops: settings, reference data, keys, database, producer, consumer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy import Engine

from phoihop_common.auth import ApiKeys
from phoihop_common.config import Reference, load_reference
from phoihop_common.db import make_engine
from phoihop_common.http import Readiness, readiness
from phoihop_common.logs import get_logger
from phoihop_common.pii import PiiCipher, load_pii_cipher
from phoihop_common.shutdown import cancel_all
from phoihop_ingest.audit_client import AuditClient
from phoihop_ingest.auth import KeyIndex
from phoihop_ingest.consumer import InboundConsumer
from phoihop_ingest.exceptions import StoreUnavailableError
from phoihop_ingest.idempotency import IdempotencyStore
from phoihop_ingest.metrics import IngestMetrics, ingest_metrics
from phoihop_ingest.publisher import Publisher
from phoihop_ingest.settings import IngestSettings

log = get_logger(__name__)


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

    async def ready(self) -> Readiness:
        """Readiness of each part, and whether the inbound consumer is stuck."""
        db = self.store.ready and await asyncio.to_thread(self.store.ping)
        checks = {
            "producer": self.publisher.ready,
            "consumer": self.consumer.ready,
            "database": db,
        }
        problem = self.consumer.problem()
        return readiness(checks, problem=None if problem is None else ("consumer_stuck", problem))

    async def stop(self) -> None:
        """Cancel tasks, flush the producer, close clients."""
        await cancel_all("loops", self.tasks, seconds=8.0)
        await self.publisher.close()
        await self.audit.close()
        self.engine.dispose()
