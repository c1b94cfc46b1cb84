"""`record_consumer_lag`: the consumer-lag gauge the operations dashboard and alerts read."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import REGISTRY

from phoihop_common.metrics import ServiceMetrics, record_consumer_lag
from phoihop_schemas.topics import DEAD_LETTER


async def test_lag_is_end_offset_minus_position(kafka_bootstrap: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for _ in range(10):
            await producer.send_and_wait(DEAD_LETTER.name, b"x", partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        DEAD_LETTER.name,
        bootstrap_servers=kafka_bootstrap,
        group_id="ops-lag-test",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        metrics = ServiceMetrics.create("opslagtest")
        consumed = 0
        deadline = time.monotonic() + 30  # the group join alone can take half a session
        while consumed < 3 and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1_000, max_records=3 - consumed)
            consumed += sum(len(records) for records in batch.values())
        assert consumed == 3
        await record_consumer_lag(metrics, consumer)
        lag = REGISTRY.get_sample_value(
            "phoihop_opslagtest_consumer_lag_records",
            {"topic": DEAD_LETTER.name, "partition": "0"},
        )
        assert lag == 7
    finally:
        await consumer.stop()
