"""Consumer of the inbound submissions topic: decode, validate, emit `received` or dead-letter."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.errors import KafkaError

from phoihop_common.config import Reference
from phoihop_common.dlq import dead_letter
from phoihop_common.kafka import consumer_kwargs
from phoihop_common.logs import get_logger
from phoihop_common.metrics import record_consumer_lag
from phoihop_ingest.exceptions import InvalidInputError, UnavailableError
from phoihop_ingest.idempotency import MAX_KEY_CHARS, IdempotencyStore
from phoihop_ingest.metrics import IngestMetrics
from phoihop_ingest.publisher import Publisher
from phoihop_ingest.settings import IngestSettings
from phoihop_ingest.submissions import Pending, submit_many
from phoihop_ingest.validation import check_submission
from phoihop_schemas.codec import DecodeError, decode
from phoihop_schemas.events import InboundSubmission
from phoihop_schemas.topics import INBOUND_SUBMISSIONS

log = get_logger(__name__)
TOPIC = INBOUND_SUBMISSIONS.name


@dataclass(frozen=True)
class Rejected:
    """A record that goes to the dead-letter topic."""

    record: ConsumerRecord[bytes, bytes]
    reason: str
    detail: str


def inbound_key(message: InboundSubmission, event_id: str) -> str:
    """Idempotency key of an inbound submission: its own key, its source_ref, else its event id."""
    key = message.idempotency_key or message.source_ref or f"ce:{event_id}"
    return key[:MAX_KEY_CHARS]


def triage(
    record: ConsumerRecord[bytes, bytes], *, reference: Reference, max_text_chars: int
) -> Pending | Rejected:
    """Decide what one inbound record becomes."""
    try:
        envelope = decode(value=record.value, headers=record.headers, key=record.key)
    except DecodeError as exc:
        return Rejected(record, exc.reason, exc.detail)
    message = envelope.data
    if not isinstance(message, InboundSubmission):
        return Rejected(record, "unexpected_type", envelope.type)
    if message.submitted_by not in reference.agency_codes:
        return Rejected(record, "unknown_agency", message.submitted_by)
    try:
        check_submission(submission=message, reference=reference, max_text_chars=max_text_chars)
    except InvalidInputError as exc:
        return Rejected(record, exc.reason, str(exc.detail))
    return Pending(
        submission=message,
        agency=message.submitted_by,
        key=inbound_key(message, envelope.id),
    )


class InboundConsumer:
    """getmany batches; produce (and dead-letter) first, commit offsets after."""

    def __init__(
        self,
        *,
        settings: IngestSettings,
        reference: Reference,
        publisher: Publisher,
        store: IdempotencyStore,
        metrics: IngestMetrics,
    ) -> None:
        self.settings = settings
        self.reference = reference
        self.publisher = publisher
        self.store = store
        self.metrics = metrics
        self.consumer: AIOKafkaConsumer | None = None

    @property
    def ready(self) -> bool:
        """True once the consumer is started."""
        return self.consumer is not None

    async def run(self) -> None:
        """Consume until cancelled; survives broker and database outages."""
        await self.publisher.wait_started()
        while self.consumer is None:
            consumer = AIOKafkaConsumer(
                TOPIC,
                **consumer_kwargs(self.settings),
                group_id=self.settings.consumer_group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=10_000,
                heartbeat_interval_ms=3_000,
                max_poll_records=self.settings.consumer_batch_size,
            )
            try:
                await consumer.start()
            except (KafkaError, OSError) as exc:
                log.warning("consumer_start_failed", error=str(exc))
                with contextlib.suppress(KafkaError, OSError):
                    await consumer.stop()
                await asyncio.sleep(1.0)
                continue
            self.consumer = consumer
        try:
            while True:
                batches = await self.consumer.getmany(
                    timeout_ms=500, max_records=self.settings.consumer_batch_size
                )
                await record_consumer_lag(self.metrics.service, self.consumer)
                records = [r for part in batches.values() for r in part]
                if not records:
                    continue
                started = time.perf_counter()
                try:
                    await self.process(records)
                    await self.consumer.commit()
                    per_record = (time.perf_counter() - started) / len(records)
                    for _ in records:
                        self.metrics.service.processing.labels(TOPIC).observe(per_record)
                except (UnavailableError, KafkaError) as exc:
                    # Nothing committed: read the batch again once the outage is over.
                    log.warning("inbound_batch_retry", error=str(exc), records=len(records))
                    await asyncio.sleep(1.0)
                    with contextlib.suppress(KafkaError):
                        await self.consumer.seek_to_committed()
        finally:
            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                await asyncio.wait_for(self.consumer.stop(), 10.0)
            self.consumer = None

    async def process(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Emit `received` for valid records, dead-letter the others."""
        service = self.metrics.service
        accepted: list[tuple[ConsumerRecord[bytes, bytes], Pending]] = []
        rejected: list[Rejected] = []
        for record in records:
            outcome = triage(
                record, reference=self.reference, max_text_chars=self.settings.max_text_chars
            )
            if isinstance(outcome, Rejected):
                rejected.append(outcome)
            else:
                accepted.append((record, outcome))
        if accepted:
            outcomes = await submit_many(
                items=[p for _, p in accepted], publisher=self.publisher, store=self.store
            )
            for (record, _), result in zip(accepted, outcomes, strict=True):
                if result.id is None:
                    reason = result.error or "rejected"
                    rejected.append(Rejected(record, reason, result.detail or ""))
                else:
                    self.metrics.count("duplicate" if result.duplicate else "accepted")
                    service.consumed.labels(TOPIC, "accepted").inc()
        producer = self.publisher.producer
        for item in rejected:
            if producer is None:
                raise UnavailableError("broker_unavailable", "producer not connected")
            log.info("inbound_dead_lettered", reason=item.reason, offset=item.record.offset)
            await dead_letter(
                producer,
                metrics=service,
                reason=item.reason,
                detail=item.detail,
                topic=item.record.topic,
                partition=item.record.partition,
                offset=item.record.offset,
                key=item.record.key,
                value=item.record.value,
                headers=item.record.headers,
            )
            self.metrics.count("rejected")
            service.consumed.labels(TOPIC, "dead_lettered").inc()
