"""The outcome publisher on the real broker and a SQLite outbox: outcomes written while it
lingers go out in one round, each once, as CloudEvents another consumer can read."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import insert, select

from phoihop_common.kafka import KafkaSettings, client_kwargs, producer_kwargs
from phoihop_notify import store
from phoihop_notify.metrics import notify_metrics
from phoihop_notify.models import outbox
from phoihop_notify.publisher import PUBLISH_BATCH, OutcomePublisher
from phoihop_schemas.codec import decode
from phoihop_schemas.events import NotificationOutcome
from phoihop_schemas.topics import CANONICAL

pytestmark = pytest.mark.integration
TOPIC = CANONICAL["notification_outcome"].name


class CountingPublisher(OutcomePublisher):
    """The real publisher, recording how many outcomes each round sent."""

    rounds: list[int]

    async def publish_once(self, limit: int = PUBLISH_BATCH) -> int:
        sent = await super().publish_once(limit=limit)
        if sent:
            self.rounds.append(sent)
        return sent


def outcome() -> NotificationOutcome:
    return NotificationOutcome(
        recommendation_id=str(uuid.uuid4()),
        event_id=str(uuid.uuid4()),
        event_type="assigned",
        subscription_id=str(uuid.uuid4()),
        agency="UBND_TINH",
        channel="webhook",
        attempt=1,
        outcome="delivered",
        status_code=204,
        attempted_at=datetime.now(UTC),
    )


async def test_outcomes_of_one_moment_share_a_round(kafka_bootstrap: str, tmp_path: Path) -> None:
    engine = store.make_engine(f"sqlite:///{tmp_path / 'notify.db'}")
    store.migrate(engine)
    settings = KafkaSettings(kafka_bootstrap=kafka_bootstrap)
    producer = AIOKafkaProducer(**producer_kwargs(settings))
    await producer.start()
    publisher = CountingPublisher(
        engine=engine, producer=producer, metrics=notify_metrics(), linger=1.0
    )
    publisher.rounds = []
    task = asyncio.create_task(publisher.run())
    written = [outcome() for _ in range(3)]
    try:
        await asyncio.sleep(0.2)  # the first look found nothing: it waits for a wake-up
        for event in written:
            with engine.begin() as conn:
                conn.execute(
                    insert(outbox).values(
                        id=event.event_id,
                        recommendation_id=event.recommendation_id,
                        payload=event.model_dump(mode="json"),
                        created_at=datetime.now(UTC),
                    )
                )
            publisher.wake()
            await asyncio.sleep(0.05)
        for _ in range(200):  # until a round has returned (its rows marked published)
            if sum(publisher.rounds) >= len(written):
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await producer.stop()
    assert publisher.rounds == [3]  # one query, one produce, one update for the three
    with engine.connect() as conn:
        left = conn.execute(select(outbox.c.id).where(outbox.c.published_at.is_(None))).all()
    assert left == []

    consumer = AIOKafkaConsumer(
        TOPIC, auto_offset_reset="earliest", **client_kwargs(settings), group_id=None
    )
    await consumer.start()
    try:
        seen: list[str] = []
        for _ in range(20):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    data = decode(value=r.value, headers=r.headers, key=r.key).data
                    assert isinstance(data, NotificationOutcome)
                    seen.append(data.event_id)
            if len(seen) >= 3:
                break
    finally:
        await consumer.stop()
    assert sorted(seen) == sorted(o.event_id for o in written)
