"""Dead-lettering: a record that cannot be processed goes to one topic with its reason."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka import AIOKafkaProducer

from phoihop_common.metrics import ServiceMetrics
from phoihop_schemas.codec import dead_letter_headers
from phoihop_schemas.topics import DEAD_LETTER


async def dead_letter(
    producer: AIOKafkaProducer,
    *,
    metrics: ServiceMetrics,
    reason: str,
    detail: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Iterable[tuple[str, bytes]] = (),
) -> None:
    """Send the original record, with reason headers (`dlq_*`), to the dead-letter topic."""
    extra = dead_letter_headers(
        reason=reason,
        detail=detail,
        topic=topic,
        partition=partition,
        offset=offset,
        service=metrics.service,
    )
    await producer.send_and_wait(
        DEAD_LETTER.name, value=value or b"", key=key, headers=[*headers, *extra]
    )
    metrics.dead_lettered.labels(topic, reason).inc()
