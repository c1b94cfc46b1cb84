"""The notify handler: lifecycle events → events and their deliveries in one transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from sqlalchemy import Engine

from phoihop_common.consumer import ConsumerKit, Raw, Reject
from phoihop_common.db import DATABASE_TRANSIENT
from phoihop_common.logs import get_logger
from phoihop_notify import store
from phoihop_notify.bodies import envelope_attributes
from phoihop_notify.metrics import NotifyMetrics
from phoihop_notify.settings import NotifySettings
from phoihop_schemas.codec import DecodeError, decode
from phoihop_schemas.events import LifecycleEvent
from phoihop_schemas.topics import LIFECYCLE_TOPICS

log = get_logger(__name__)


class EventConsumer:
    """The consumer kit over the lifecycle topics; effects before offsets."""

    def __init__(
        self,
        *,
        settings: NotifySettings,
        engine: Engine,
        producer: AIOKafkaProducer,
        metrics: NotifyMetrics,
        on_new_deliveries: Callable[[], None],
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.on_new_deliveries = on_new_deliveries
        self.kit = ConsumerKit(
            name="notify",
            topics=[t.name for t in LIFECYCLE_TOPICS],
            group_id=settings.consumer_group,
            settings=settings,
            policy=settings,
            handler=self.handle,
            producer=lambda: producer,
            metrics=metrics.service,
            transient=DATABASE_TRANSIENT,
        )

    @property
    def assigned(self) -> bool:
        """True once the group gave this consumer its partitions."""
        return self.kit.assigned

    async def start(self) -> None:
        """Connect and join the group."""
        await self.kit.start()

    async def stop(self) -> None:
        """Leave the group."""
        await self.kit.stop()

    async def run(self) -> None:
        """Consume until cancelled."""
        await self.kit.run()

    async def handle(self, records: Sequence[Raw]) -> list[Reject]:
        """Decode a batch, reject what is invalid, record the rest in one transaction."""
        items: list[store.Consumed] = []
        rejects: list[Reject] = []
        for rec in records:
            try:
                items.append(self._decode(rec))
            except DecodeError as exc:
                rejects.append(Reject(rec, exc.reason, exc.detail))
                continue
            self.metrics.service.consumed.labels(rec.topic, "ok").inc()
        created = await asyncio.to_thread(
            store.record_events, self.engine, items=items, now=datetime.now(UTC)
        )
        if created:
            log.debug("deliveries_created", count=created, events=len(items))
        if items:
            # Also when nothing was created: a later event held for this one may now be due.
            self.on_new_deliveries()
        return rejects

    @staticmethod
    def _decode(rec: Raw) -> store.Consumed:
        env = decode(value=rec.value, headers=rec.headers, key=rec.key)
        model = env.data
        if not isinstance(model, LifecycleEvent):
            raise DecodeError("unexpected_type", env.type)
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
