"""Stage 1, `routing-received` (topic `received`, keyed by recommendation id).

Decodes a received event, classifies it (`classify.Classifier`) and sends a *candidate*
(`internal.CandidateMessage`: the received event, its classification and its
`duplicates.signature`) to ROUTING_DEDUP keyed by `duplicates.bucket_key`: every case that
could be a duplicate of another lands on the same partition, whichever worker owns it. A
record that is not a received event, or that the classifier fails on
(`classification_failed`), is dead-lettered alone.
"""

from __future__ import annotations

import time

from phoihop_routing.classify import Classifier
from phoihop_routing.duplicates import bucket_key, signature
from phoihop_routing.internal import CandidateMessage, RoutedClassification
from phoihop_routing.stage_base import STAGE_RECEIVED, Incoming, Plumbing, log
from phoihop_schemas import codec
from phoihop_schemas.events import Received
from phoihop_schemas.topics import ROUTING_DEDUP


class ReceivedStage:
    """Stage 1: classify a received event and send it, as a candidate, to its bucket."""

    def __init__(self, plumbing: Plumbing, *, classifier: Classifier) -> None:
        self.plumbing = plumbing
        self.classifier = classifier

    async def on_received(self, record: Incoming) -> None:
        """Decode and classify a received event, send the candidate to its bucket."""
        await self.plumbing.guarded(STAGE_RECEIVED, record, lambda: self._received(record))

    async def _received(self, record: Incoming) -> bool:
        started = time.perf_counter()
        p = self.plumbing
        try:
            envelope = codec.decode(value=record.value, headers=record.headers, key=record.key)
        except codec.DecodeError as exc:
            await p.dead_letter(record, reason=exc.reason, detail=exc.detail)
            return False
        received = envelope.data
        if not isinstance(received, Received):
            await p.dead_letter(
                record, reason="unexpected_type", detail=f"{envelope.type} on {record.topic}"
            )
            return False
        try:
            classification = self.classifier.classify(
                text=received.text, kind=received.kind, locality=received.locality
            )
            bucket = bucket_key(locality=received.locality, classification=classification)
            sig = signature(
                recommendation_id=received.recommendation_id,
                text=received.text,
                locality=received.locality,
                classification=classification,
            )
        except Exception as exc:  # the classifier's failure must not stop the partition
            p.record_error(STAGE_RECEIVED, exc)
            log.exception("classification_failed", recommendation_id=received.recommendation_id)
            await p.dead_letter(record, reason="classification_failed", detail=repr(exc))
            return False
        candidate = CandidateMessage(
            bucket=bucket,
            received=received,
            classification=RoutedClassification.of(classification),
            signature=sig,
        )
        await p.send_internal(topic=ROUTING_DEDUP.name, key=bucket, message=candidate)
        p.processed(record, started=started)
        return True
