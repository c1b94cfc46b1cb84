"""Reads the dead-letter topic from its start, without a consumer group, until every wanted
record is found or the time is up."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from phoihop_common.kafka import KafkaSettings, client_kwargs
from phoihop_schemas.topics import DEAD_LETTER

K = TypeVar("K", bound=Hashable)
Headers = dict[str, str]


async def read_dead_letters(
    bootstrap: str,
    wanted: set[K],
    *,
    within: float,
    identify: Callable[[ConsumerRecord[bytes, bytes], Headers], K | None],
) -> dict[K, list[Headers]]:
    """The headers of every dead letter whose `identify(record, headers)` is in `wanted`."""
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False, fetch_max_bytes=2**23, max_partition_fetch_bytes=2**22,
        **client_kwargs(KafkaSettings(kafka_bootstrap=bootstrap)),
    )  # fmt: skip
    await consumer.start()
    found: dict[K, list[Headers]] = {}
    try:
        parts = [
            TopicPartition(DEAD_LETTER.name, p)
            for p in consumer.partitions_for_topic(DEAD_LETTER.name) or ()
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and not wanted <= set(found):
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    headers = {k: v.decode(errors="replace") for k, v in r.headers}
                    which = identify(r, headers)
                    if which is not None and which in wanted:
                        found.setdefault(which, []).append(headers)
    finally:
        await consumer.stop()
    return found
