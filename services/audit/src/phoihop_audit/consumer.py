"""The consumer: batches from every canonical topic → decode → store → commit offsets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError
from sqlalchemy import Engine

from phoihop_audit import trail
from phoihop_audit.keys import PiiCipher
from phoihop_audit.metrics import AuditMetrics
from phoihop_audit.settings import AuditSettings
from phoihop_common.dlq import dead_letter
from phoihop_common.kafka import consumer_kwargs, producer_kwargs
from phoihop_common.logs import get_logger
from phoihop_common.metrics import record_consumer_lag
from phoihop_schemas.codec import DecodeError, decode
from phoihop_schemas.topics import CANONICAL

log = get_logger(__name__)


def canonical_topics() -> list[str]:
    """Every canonical topic: the lifecycle events and the notification outcomes."""
    return [t.name for t in CANONICAL.values()]


class AuditConsumer:
    """Owns the Kafka consumer and the dead-letter producer of the audit service."""

    def __init__(
        self, *, settings: AuditSettings, engine: Engine, cipher: PiiCipher, metrics: AuditMetrics
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.cipher = cipher
        self.metrics = metrics
        self.consumer = AIOKafkaConsumer(
            *canonical_topics(),
            group_id=settings.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=max(1000, settings.session_timeout_ms // 5),
            **consumer_kwargs(settings),
        )
        self.producer = AIOKafkaProducer(**producer_kwargs(settings))
        self.started = False

    @property
    def assigned(self) -> bool:
        """True once the group gave this consumer partitions."""
        return self.started and bool(self.consumer.assignment())

    async def start(self) -> None:
        """Connect both clients."""
        await self.producer.start()
        await self.consumer.start()
        self.started = True

    async def stop(self) -> None:
        """Disconnect (uncommitted records are redelivered to whoever takes over)."""
        self.started = False
        await self.consumer.stop()
        await self.producer.stop()

    async def run(self) -> None:
        """Consume until cancelled; a failing batch is retried, never skipped."""
        while True:
            batches = await self.consumer.getmany(
                timeout_ms=500, max_records=self.settings.batch_max_records
            )
            await record_consumer_lag(self.metrics.service, self.consumer)
            records = [r for part in batches.values() for r in part]
            if not records:
                continue
            try:
                await self.handle(records)
            except asyncio.CancelledError:
                raise
            except Exception:  # a database outage must not lose the batch: rewind and retry
                log.exception("batch_failed", records=len(records))
                for tp, part in batches.items():
                    self.consumer.seek(tp, part[0].offset)
                await asyncio.sleep(1.0)
                continue
            try:
                await self.consumer.commit()
            except KafkaError as exc:  # e.g. a rebalance: the records come again and are deduped
                log.warning("commit_failed", error=str(exc))

    async def handle(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Decode, dead-letter the undecodable, store the rest in one transaction."""
        start = time.perf_counter()
        prepared: list[trail.Incoming] = []
        origin: dict[str, ConsumerRecord[bytes, bytes]] = {}
        for rec in records:
            try:
                env = decode(value=rec.value, headers=rec.headers, key=rec.key)
            except DecodeError as exc:
                log.warning("dead_letter", topic=rec.topic, offset=rec.offset, reason=exc.reason)
                self.metrics.service.consumed.labels(rec.topic, "dead_lettered").inc()
                await self._dead_letter(rec, reason=exc.reason, detail=exc.detail)
                continue
            if env.event_name not in CANONICAL or CANONICAL[env.event_name].name != rec.topic:
                self.metrics.service.consumed.labels(rec.topic, "dead_lettered").inc()
                await self._dead_letter(
                    rec, reason="wrong_topic", detail=f"{env.type} does not belong on {rec.topic}"
                )
                continue
            item = trail.prepare(env, cipher=self.cipher)
            prepared.append(item)
            origin[item.event_id] = rec
        result = await asyncio.to_thread(trail.append, self.engine, prepared, cipher=self.cipher)
        for item in result.stored:
            self.metrics.stored.labels(item.type).inc()
            self.metrics.service.consumed.labels(origin[item.event_id].topic, "stored").inc()
            log.debug("stored", event_id=item.event_id, recommendation_id=item.recommendation_id)
        for item in result.duplicates:
            self.metrics.duplicates.inc()
            self.metrics.service.consumed.labels(origin[item.event_id].topic, "duplicate").inc()
        for item in result.conflicts:
            rec = origin[item.event_id]
            log.error("event_id_conflict", event_id=item.event_id, topic=rec.topic)
            self.metrics.service.consumed.labels(rec.topic, "dead_lettered").inc()
            await self._dead_letter(
                rec, reason="event_id_conflict", detail=f"{item.event_id} stored with other content"
            )
        elapsed = time.perf_counter() - start
        for rec in records:
            self.metrics.service.processing.labels(rec.topic).observe(elapsed / len(records))

    async def _dead_letter(
        self, rec: ConsumerRecord[bytes, bytes], *, reason: str, detail: str
    ) -> None:
        await dead_letter(
            self.producer,
            metrics=self.metrics.service,
            reason=reason,
            detail=detail,
            topic=rec.topic,
            partition=rec.partition,
            offset=rec.offset,
            key=rec.key,
            value=rec.value,
            headers=list(rec.headers),
        )
