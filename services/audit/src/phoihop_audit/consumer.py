"""The audit handler: batches from every canonical topic → decode → store (the kit commits)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from sqlalchemy import Engine
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError, TimeoutError

from phoihop_audit import trail
from phoihop_audit.metrics import AuditMetrics
from phoihop_audit.settings import AuditSettings
from phoihop_common.consumer import ConsumerKit, Raw, Reject
from phoihop_common.kafka import producer_kwargs
from phoihop_common.logs import get_logger
from phoihop_common.pii import PiiCipher
from phoihop_common.shutdown import bounded
from phoihop_schemas.codec import DecodeError, decode
from phoihop_schemas.topics import CANONICAL

log = get_logger(__name__)

# The database being unreachable is transient: the batch waits, nothing is dead-lettered.
DATABASE_TRANSIENT: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    DisconnectionError,
    TimeoutError,
)


def canonical_topics() -> list[str]:
    """Every canonical topic: the lifecycle events and the notification outcomes."""
    return [t.name for t in CANONICAL.values()]


class AuditConsumer:
    """The audit service's consumer kit, its dead-letter producer and its batch handler."""

    def __init__(
        self, *, settings: AuditSettings, engine: Engine, cipher: PiiCipher, metrics: AuditMetrics
    ) -> None:
        self.engine = engine
        self.cipher = cipher
        self.metrics = metrics
        self.producer = AIOKafkaProducer(**producer_kwargs(settings))
        self.kit = ConsumerKit(
            name="audit",
            topics=canonical_topics(),
            group_id=settings.consumer_group,
            settings=settings,
            policy=settings,
            handler=self.handle,
            producer=lambda: self.producer,
            metrics=metrics.service,
            transient=DATABASE_TRANSIENT,
        )

    @property
    def assigned(self) -> bool:
        """True once the group gave this consumer partitions."""
        return self.kit.assigned

    async def start(self) -> None:
        """Connect both clients."""
        await self.producer.start()
        await self.kit.start()

    async def stop(self) -> None:
        """Disconnect (uncommitted records are redelivered to whoever takes over)."""
        await self.kit.stop()
        await bounded("producer", self.producer.stop(), seconds=5.0)

    async def run(self) -> None:
        """Consume until cancelled."""
        await self.kit.run()

    async def handle(self, records: Sequence[Raw]) -> list[Reject]:
        """Decode, reject the undecodable, store the rest in one transaction."""
        start = time.perf_counter()
        rejects: list[Reject] = []
        prepared: list[trail.Incoming] = []
        origin: dict[str, Raw] = {}
        for rec in records:
            try:
                env = decode(value=rec.value, headers=rec.headers, key=rec.key)
            except DecodeError as exc:
                rejects.append(Reject(rec, exc.reason, exc.detail))
                continue
            if env.event_name not in CANONICAL or CANONICAL[env.event_name].name != rec.topic:
                rejects.append(
                    Reject(rec, "wrong_topic", f"{env.type} does not belong on {rec.topic}")
                )
                continue
            # A reporter that opens with none of audit's keys raises PiiDecryptError: the kit
            # retries that record alone, then dead-letters it (`processing_failed`).
            item = trail.prepare(env, cipher=self.cipher)
            prepared.append(item)
            origin[item.event_id] = rec
        result = await asyncio.to_thread(trail.append, self.engine, prepared, cipher=self.cipher)
        service = self.metrics.service
        for item in result.stored:
            self.metrics.stored.labels(item.type).inc()
            service.consumed.labels(origin[item.event_id].topic, "stored").inc()
        for item in result.duplicates:
            self.metrics.duplicates.inc()
            service.consumed.labels(origin[item.event_id].topic, "duplicate").inc()
        for item in result.conflicts:
            log.error("event_id_conflict", event_id=item.event_id)
            rejects.append(
                Reject(
                    origin[item.event_id],
                    "event_id_conflict",
                    f"{item.event_id} stored with other content",
                )
            )
        elapsed = time.perf_counter() - start
        log.debug("batch_stored", records=len(records), seconds=round(elapsed, 4))
        return rejects
