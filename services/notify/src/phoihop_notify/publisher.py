"""Publish outcome events from the outbox to the notification-outcome topic."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sqlalchemy import Engine

from phoihop_common.logs import get_logger
from phoihop_notify import store
from phoihop_notify.metrics import NotifyMetrics
from phoihop_schemas.codec import encode
from phoihop_schemas.events import NotificationOutcome
from phoihop_schemas.topics import CANONICAL

log = get_logger(__name__)
SOURCE = "/phoihop/notify"
PUBLISH_BATCH = 500  # outcome events sent per round, at most


class OutcomePublisher:
    """Drains `notify_outbox`; an outcome's id is deterministic, so a re-send is a duplicate."""

    def __init__(
        self,
        *,
        engine: Engine,
        producer: AIOKafkaProducer,
        metrics: NotifyMetrics,
        linger: float = 0.0,
    ) -> None:
        self.engine = engine
        self.producer = producer
        self.metrics = metrics
        self.linger = linger
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Something was written to the outbox."""
        self._wake.set()

    async def run(self) -> None:
        """Publish forever."""
        limit = PUBLISH_BATCH
        while True:
            # Cleared before looking, so an outcome written during the query is not missed.
            self._wake.clear()
            try:
                sent = await self.publish_once(limit=limit)
            except asyncio.CancelledError:
                raise
            except KafkaError as exc:
                log.warning("outcome_publish_failed", error=str(exc))
                sent = 0
                await asyncio.sleep(1.0)
            except Exception:
                log.exception("outcome_publish_failed")
                sent = 0
                await asyncio.sleep(1.0)
            # A short batch took everything there was: look again when woken, not at once
            # (an immediate second query would find nothing, at a round trip per outcome).
            if sent < limit:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                    # Woken by a first outcome: let the outcomes of the same moment join it,
                    # so that one query, one produce and one update serve them all.
                    await asyncio.sleep(self.linger)

    async def publish_once(self, limit: int = PUBLISH_BATCH) -> int:
        """Send one batch and mark it published once the broker acknowledged it."""
        rows = await asyncio.to_thread(store.unpublished, self.engine, limit=limit)
        if not rows:
            return 0
        topic = CANONICAL["notification_outcome"].name
        futures = []
        for _id, payload in rows:
            outcome = NotificationOutcome.model_validate(payload)
            record = encode(outcome, source=SOURCE, time=outcome.attempted_at)
            futures.append(
                await self.producer.send(
                    topic, value=record.value, key=record.key, headers=record.headers
                )
            )
        await asyncio.gather(*futures)
        self.metrics.service.produced.labels(topic).inc(len(rows))
        await asyncio.to_thread(
            store.mark_published, self.engine, ids=[i for i, _ in rows], now=datetime.now(UTC)
        )
        return len(rows)
