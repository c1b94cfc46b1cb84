"""Dead-lettering: a record that cannot be processed goes to one topic with its reason.

`dead_letter_message` always yields something the producer can publish: a value over
`MAX_MESSAGE_BYTES` (or a key or header set too large) is replaced by a small JSON summary
(SHA-256 digest, size and the first KiB, base64) and the `dlq_*` headers keep the
original coordinates. Every consumer (aiokafka kit and routing's faust agents) uses it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from phoihop_common.metrics import ServiceMetrics
from phoihop_schemas.codec import MAX_MESSAGE_BYTES, dead_letter_headers
from phoihop_schemas.topics import DEAD_LETTER

HEAD_BYTES = 1024
MAX_KEY_BYTES = 1024
MAX_HEADER_BYTES = 16 * 1024


@dataclass(frozen=True)
class DeadLetter:
    """A record ready for the dead-letter topic."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def _summary(data: bytes) -> bytes:
    return json.dumps(
        {
            "truncated": True,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "head_base64": base64.b64encode(data[:HEAD_BYTES]).decode(),
        }
    ).encode()


def dead_letter_message(
    *,
    reason: str,
    detail: str,
    topic: str,
    partition: int,
    offset: int,
    service: str,
    key: bytes | None,
    value: bytes | None,
    headers: Iterable[tuple[str, bytes]] = (),
    max_value_bytes: int = MAX_MESSAGE_BYTES,
) -> DeadLetter:
    """The dead-letter record of one consumed record: original or a summary, with `dlq_*`."""
    extra = dead_letter_headers(
        reason=reason,
        detail=detail,
        topic=topic,
        partition=partition,
        offset=offset,
        service=service,
    )
    data = value or b""
    if len(data) > max_value_bytes:
        data = _summary(data)
        extra.append(("dlq_value_truncated", b"1"))
    if key is not None and len(key) > MAX_KEY_BYTES:
        extra.append(("dlq_key_sha256", hashlib.sha256(key).hexdigest().encode()))
        key = key[:MAX_KEY_BYTES]
    original: list[tuple[str, bytes]] = []
    for name, raw in headers:
        item = raw if isinstance(raw, bytes) else str(raw).encode()
        original.append((str(name), item))
    if sum(len(n) + len(v) for n, v in original) > MAX_HEADER_BYTES:
        extra.append(("dlq_headers_dropped", str(len(original)).encode()))
        original = []
    original = [(n, v) for n, v in original if not n.startswith("dlq_")]
    return DeadLetter(key=key, value=data, headers=[*original, *extra])


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
    """Send the record (or its summary), with reason headers (`dlq_*`), to the dead-letter topic."""
    message = dead_letter_message(
        reason=reason,
        detail=detail,
        topic=topic,
        partition=partition,
        offset=offset,
        service=metrics.service,
        key=key,
        value=value,
        headers=headers,
    )
    await producer.send_and_wait(
        DEAD_LETTER.name, value=message.value, key=message.key, headers=message.headers
    )
    metrics.dead_lettered.labels(topic, reason).inc()
