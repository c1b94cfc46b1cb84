"""The durable-consumer floor: the least any consumer of the bus that keeps events does.

A consumer group member reads the ceiling's records, decodes each with the shared codec
(every consumer validates what it trusts), inserts each record's id, type and raw value in
one SQLite transaction per batch (in a worker thread, as the services do) and commits the
offsets after that. Nothing else: no routing, no webhook, no hash chain, no outbox. Its CPU
per record against the plain aiokafka loop's bounds what audit and notify can reach.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from sqlalchemy import Column, Engine, LargeBinary, MetaData, String, Table, insert

from phoihop_common.consumer import ConsumerPolicy
from phoihop_common.db import make_engine
from phoihop_common.kafka import KafkaSettings, client_kwargs
from phoihop_schemas.codec import decode

BATCH = ConsumerPolicy().consumer_max_records  # the services' batch bound

_EVENTS = Table(
    "floor_events",
    MetaData(),
    Column("id", String, primary_key=True),
    Column("type", String, nullable=False),
    Column("value", LargeBinary, nullable=False),
)
_INSERT = insert(_EVENTS)


def _store(engine: Engine, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(_INSERT, rows)


async def measure(*, bootstrap: str, topic: str, records: int, db_path: Path) -> dict[str, Any]:
    """Consume `records` records of `topic` durably; the rate and CPU per record once reading.

    The clock and the CPU count start at the first batch (after the group join); the CPU is
    this process's, the database thread included.
    """
    engine = make_engine(f"sqlite:///{db_path}")
    _EVENTS.metadata.create_all(engine)
    consumer = AIOKafkaConsumer(
        topic,
        group_id=f"bench-floor-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **client_kwargs(KafkaSettings(kafka_bootstrap=bootstrap)),
    )
    await consumer.start()
    try:
        got, batches = 0, 0
        cpu0 = t0 = 0.0
        while got < records:
            parts = await consumer.getmany(timeout_ms=200, max_records=BATCH)
            batch = [r for part in parts.values() for r in part]
            if not batch:
                continue
            if not got:
                cpu0, t0 = time.process_time(), time.perf_counter()
            rows = []
            for rec in batch:
                env = decode(value=rec.value, headers=rec.headers, key=rec.key)
                rows.append({"id": env.id, "type": env.type, "value": rec.value})
            await asyncio.to_thread(_store, engine, rows)
            await consumer.commit()
            got += len(batch)
            batches += 1
        cpu, elapsed = time.process_time() - cpu0, time.perf_counter() - t0
    finally:
        await consumer.stop()
        engine.dispose()
    return {
        "records": got,
        "batches": batches,
        "per_s": round(got / elapsed, 1) if elapsed > 0 else None,
        "cpu_ms_per_record": round(1000 * cpu / got, 4),
    }
