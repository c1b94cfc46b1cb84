"""Consume every lifecycle topic in batches: record events and their deliveries, then commit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from sqlalchemy import Engine

from phoihop_common.dlq import dead_letter
from phoihop_common.kafka import client_kwargs
from phoihop_common.logs import get_logger
from phoihop_common.metrics import record_consumer_lag
from phoihop_notify import store
from phoihop_notify.bodies import envelope_attributes
from phoihop_notify.metrics import NotifyMetrics
from phoihop_notify.settings import NotifySettings
from phoihop_schemas.codec import DecodeError, decode
from phoihop_schemas.events import LifecycleEvent
from phoihop_schemas.topics import LIFECYCLE_TOPICS

log = get_logger(__name__)


class EventConsumer:
    """aiokafka consumer of the lifecycle topics; effects before offsets."""

    def __init__(
        self,
        *,
        settings: NotifySettings,
        engine: Engine,
        producer: AIOKafkaProducer,
        metrics: NotifyMetrics,
        on_new_deliveries: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.producer = producer
        self.metrics = metrics
        self.on_new_deliveries = on_new_deliveries
        self.consumer = AIOKafkaConsumer(
            *(t.name for t in LIFECYCLE_TOPICS),
            group_id=settings.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000,
            # The broker answers a fetch at the latest after this wait: it bounds the latency
            # from produce to webhook when records arrive during an empty fetch.
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            **client_kwargs(settings),
        )

    @property
    def assigned(self) -> bool:
        """True once the group gave this consumer its partitions."""
        return bool(self.consumer.assignment())

    async def start(self) -> None:
        """Connect and join the group."""
        await self.consumer.start()

    async def stop(self) -> None:
        """Leave the group."""
        await self.consumer.stop()

    async def run(self) -> None:
        """Consume forever; a failed batch is fetched again (no commit before effects)."""
        while True:
            batch = await self.consumer.getmany(timeout_ms=500, max_records=500)
            await record_consumer_lag(self.metrics.service, self.consumer)
            if not batch:
                continue
            started = time.perf_counter()
            try:
                await self.process(batch)
                await self.consumer.commit()
                per_record = (time.perf_counter() - started) / sum(map(len, batch.values()))
                for tp, records in batch.items():
                    for _ in records:
                        self.metrics.service.processing.labels(tp.topic).observe(per_record)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("batch_failed")
                for tp, records in batch.items():
                    self.consumer.seek(tp, records[0].offset)
                await asyncio.sleep(1.0)

    async def process(
        self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        """Decode a batch, dead-letter what is invalid, record the rest in one transaction."""
        items: list[store.Consumed] = []
        for tp, records in batch.items():
            for rec in records:
                item = await self._decode(tp, rec)
                if item is not None:
                    items.append(item)
                    self.metrics.service.consumed.labels(tp.topic, "ok").inc()
        created = await asyncio.to_thread(
            store.record_events, self.engine, items=items, now=datetime.now(UTC)
        )
        if created:
            log.debug("deliveries_created", count=created, events=len(items))
        if items:
            # Also when nothing was created: a later event held for this one may now be due.
            self.on_new_deliveries()

    async def _decode(
        self, tp: TopicPartition, rec: ConsumerRecord[bytes, bytes]
    ) -> store.Consumed | None:
        try:
            env = decode(value=rec.value, headers=rec.headers, key=rec.key)
            if not isinstance(env.data, LifecycleEvent):
                raise DecodeError("unexpected_type", env.type)
        except DecodeError as exc:
            log.warning("dead_lettered", topic=tp.topic, offset=rec.offset, reason=exc.reason)
            await dead_letter(
                self.producer,
                metrics=self.metrics.service,
                reason=exc.reason,
                detail=exc.detail,
                topic=tp.topic,
                partition=tp.partition,
                offset=rec.offset,
                key=rec.key,
                value=rec.value,
                headers=list(rec.headers),
            )
            self.metrics.service.consumed.labels(tp.topic, "dead_lettered").inc()
            return None
        model = env.data
        return store.Consumed(
            event_id=env.id,
            event_type=env.event_name,
            recommendation_id=model.recommendation_id,
            sequence=model.sequence,
            attributes=envelope_attributes(
                event_id=env.id,
                ce_type=env.type,
                source=env.source,
                subject=env.subject,
                time=env.time,
                extensions=dict(env.extensions),
            ),
            data=model.model_dump(mode="json"),
            addressees=model.addressees(),
        )
