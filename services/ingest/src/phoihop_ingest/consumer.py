"""Consumer of the inbound submissions topic: decode, validate, emit `received` or reject."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import ConsumerRecord

from phoihop_common.config import Reference
from phoihop_common.consumer import ConsumerKit, Raw, Reject
from phoihop_common.logs import get_logger
from phoihop_common.pii import PiiCipher
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


def inbound_key(message: InboundSubmission, event_id: str) -> str:
    """Idempotency key of an inbound submission: its own key, its source_ref, else its event id."""
    key = message.idempotency_key or message.source_ref or f"ce:{event_id}"
    return key[:MAX_KEY_CHARS]


def triage(
    record: ConsumerRecord[bytes, bytes], *, reference: Reference, max_text_chars: int
) -> Pending | Reject:
    """Decide what one inbound record becomes."""
    try:
        envelope = decode(value=record.value, headers=record.headers, key=record.key)
    except DecodeError as exc:
        return Reject(record, exc.reason, exc.detail)
    message = envelope.data
    if not isinstance(message, InboundSubmission):
        return Reject(record, "unexpected_type", envelope.type)
    if message.submitted_by not in reference.agency_codes:
        return Reject(record, "unknown_agency", message.submitted_by)
    try:
        check_submission(submission=message, reference=reference, max_text_chars=max_text_chars)
    except InvalidInputError as exc:
        return Reject(record, exc.reason, str(exc.detail))
    return Pending(
        submission=message,
        agency=message.submitted_by,
        key=inbound_key(message, envelope.id),
    )


class InboundConsumer:
    """The consumer kit over the inbound submissions topic; produce first, commit after."""

    def __init__(
        self,
        *,
        settings: IngestSettings,
        reference: Reference,
        publisher: Publisher,
        store: IdempotencyStore,
        cipher: PiiCipher,
        metrics: IngestMetrics,
    ) -> None:
        self.settings = settings
        self.reference = reference
        self.publisher = publisher
        self.store = store
        self.cipher = cipher
        self.metrics = metrics
        self.kit = ConsumerKit(
            name="ingest",
            topics=[TOPIC],
            group_id=settings.consumer_group,
            settings=settings,
            policy=settings,
            handler=self.handle,
            producer=lambda: publisher.producer,
            metrics=metrics.service,
            transient=(UnavailableError,),
        )

    @property
    def ready(self) -> bool:
        """True once the consumer is started."""
        return self.kit.started

    def problem(self) -> str | None:
        """Why the consumer counts as stuck, or None."""
        return self.kit.problem()

    async def run(self) -> None:
        """Consume until cancelled; survives broker and database outages."""
        await self.publisher.wait_started()
        try:
            await self.kit.run()
        finally:
            await self.kit.stop()

    async def handle(self, records: Sequence[Raw]) -> list[Reject]:
        """Emit `received` for valid records, reject the others."""
        service = self.metrics.service
        accepted: list[tuple[Raw, Pending]] = []
        rejected: list[Reject] = []
        for record in records:
            outcome = triage(
                record, reference=self.reference, max_text_chars=self.settings.max_text_chars
            )
            if isinstance(outcome, Reject):
                rejected.append(outcome)
            else:
                accepted.append((record, outcome))
        if accepted:
            outcomes = await submit_many(
                items=[p for _, p in accepted],
                publisher=self.publisher,
                store=self.store,
                cipher=self.cipher,
            )
            for (record, _), result in zip(accepted, outcomes, strict=True):
                if result.id is None:
                    reason = result.error or "rejected"
                    rejected.append(Reject(record, reason, result.detail or ""))
                else:
                    self.metrics.count("duplicate" if result.duplicate else "accepted")
                    service.consumed.labels(TOPIC, "accepted").inc()
        for item in rejected:
            log.info("inbound_rejected", reason=item.reason, offset=item.record.offset)
            self.metrics.count("rejected")
        return rejected
