"""Fixtures of ingest's tests: the app over ASGI against a real broker and database."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from phoihop_common.net import free_port
from phoihop_ingest.settings import IngestSettings
from phoihop_testkit.plugin import TEST_PII_KEY

sys.path.insert(0, str(Path(__file__).parent))

from ingest_testkit import ReadTopic, Records, running_ingest


@pytest.fixture
def make_settings(database_url: str) -> Callable[..., IngestSettings]:
    """Settings for a test app (real database; broker given per test)."""

    def make(**overrides: Any) -> IngestSettings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "produce_timeout": 5.0,
            "retry_after_seconds": 7,
            "audit_url": f"http://127.0.0.1:{free_port()}",
            "audit_timeout": 2.0,
            "pii_key": TEST_PII_KEY,
        }
        values.update(overrides)
        return IngestSettings(**values)

    return make


@pytest.fixture
async def ingest(
    kafka_bootstrap: str, make_settings: Callable[..., IngestSettings]
) -> AsyncIterator[httpx.AsyncClient]:
    """A ready ingest app against the test broker."""
    async with running_ingest(make_settings(kafka_bootstrap=kafka_bootstrap)) as client:
        yield client


@pytest.fixture
def read_topic(kafka_bootstrap: str) -> ReadTopic:
    """Read every record of a topic, waiting (up to 30 s) until at least `count` are there."""

    async def read(topic: str, *, count: int = 1, wait: float = 30.0) -> Records:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap, enable_auto_commit=False, group_id=None
        )
        await consumer.start()
        try:
            await consumer.topics()  # loads metadata
            partitions = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            records: Records = []
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                batch = await consumer.getmany(*tps, timeout_ms=300)
                for part in batch.values():
                    records.extend(part)
                ends = await consumer.end_offsets(tps)
                positions = [await consumer.position(tp) for tp in tps]
                caught_up = all(positions[i] >= ends[tp] for i, tp in enumerate(tps))
                if len(records) >= count and caught_up:
                    break
            return records
        finally:
            await consumer.stop()

    return read
