"""Stage R, `routing-responses` (INBOUND_RESPONSES, any partition, no state): re-keying.

An agency's response arrives on whatever partition of `inbound.responses` its Kafka client
chose (Java and aiokafka hash the key with murmur2, librdkafka's default is CRC32, a custom
client may choose anything), so it cannot be applied where it lands. This stage does the
checks that need no case (CloudEvents headers, size, JSON, schema, type `Response`, Kafka
key = recommendation id: `decode_response`) and dead-letters what fails, alone, with its
reason and its own coordinates; it forwards the rest *unchanged* (value, key, headers) to
ROUTING_COMMANDS with routing's producer (aiokafka's murmur2 partitioner, like every other
command), adding `phoihop_origin_topic/_partition/_offset` headers (any such header an
agency sent is dropped first: `forward_headers`). The batch's acknowledgements are awaited
before its offsets can be committed. So a response reaches the partition, and the worker,
that owns its case, whatever client produced it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

from phoihop_routing.exceptions import RejectedError
from phoihop_routing.stage_base import (
    STAGE_RESPONSES,
    Incoming,
    Plumbing,
    forward_headers,
    settle_acks,
)
from phoihop_schemas import codec
from phoihop_schemas.events import Response
from phoihop_schemas.topics import ROUTING_COMMANDS


def decode_response(record: Incoming) -> Response:
    """An agency's response, checked as far as it can be without its case.

    Raises `codec.DecodeError` (headers, size, JSON, schema; `unexpected_type` for another
    event) or `RejectedError("key_mismatch")`: the contract keys a response by its
    recommendation id, which keeps one case's responses in order on one partition.
    """
    envelope = codec.decode(value=record.value, headers=record.headers, key=record.key)
    if not isinstance(envelope.data, Response):
        raise codec.DecodeError("unexpected_type", f"{envelope.type} on {record.topic}")
    rec_id = envelope.data.recommendation_id
    key = record.key.decode(errors="replace") if record.key else None
    if key != rec_id:
        raise RejectedError("key_mismatch", f"key {key!r} != recommendation {rec_id}")
    return envelope.data


class ResponsesStage:
    """Stage R: check a batch of inbound responses, forward them keyed by their case."""

    def __init__(self, plumbing: Plumbing) -> None:
        self.plumbing = plumbing

    async def on_responses(self, records: Sequence[Incoming]) -> None:
        """Check a batch of inbound responses, forward them keyed by their case.

        Each record is checked (`decode_response`: everything that needs no case state) and
        dead-lettered alone if it fails (`Plumbing.guarded`); the others are sent unchanged,
        with their origin headers, to ROUTING_COMMANDS keyed by recommendation id. The
        broker's acknowledgements are awaited before returning, so the offsets faust commits
        after the batch are those of forwarded (or dead-lettered) records only. An
        acknowledgement refused for good dead-letters its record (`produce_failed`); when
        some only failed to arrive, the whole batch (but the dead letters) is sent again, in
        order, after a backoff: stage 3 applies a response id once.
        """
        p = self.plumbing
        done: set[int] = set()  # dead-lettered: not sent again when the batch is re-run
        attempt = 0
        while True:
            acks: list[tuple[int, Any]] = []
            for index, record in enumerate(records):
                if index in done:
                    continue
                work = functools.partial(self._forward, record, acks, index=index)
                if not await p.guarded(STAGE_RESPONSES, record, work):
                    done.add(index)
            failed = await settle_acks(acks)
            if not failed:
                break
            attempt += 1
            await p.acks_failed(STAGE_RESPONSES, records, failed, done=done, attempt=attempt)
            if failed.keys() <= done:
                break  # only refusals, all dead-lettered: every other forward is acknowledged
        p.health[STAGE_RESPONSES].retrying_since = None

    async def _forward(self, record: Incoming, acks: list[tuple[int, Any]], *, index: int) -> bool:
        started = time.perf_counter()
        p = self.plumbing
        try:
            response = decode_response(record)
        except (codec.DecodeError, RejectedError) as exc:
            await p.dead_letter(record, reason=exc.reason, detail=exc.detail)
            return False
        headers = forward_headers(record)
        ack = await p.outbox.send(
            topic=ROUTING_COMMANDS.name,
            key=response.recommendation_id.encode(),
            value=record.value or b"",
            headers=headers,
        )
        p.metrics.service.produced.labels(ROUTING_COMMANDS.name).inc()
        acks.append((index, ack))
        p.processed(record, started=started)
        return True
