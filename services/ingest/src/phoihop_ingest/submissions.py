"""Submitting recommendations: idempotency claims, `received` events, acknowledgement."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from phoihop_common.logs import get_logger
from phoihop_common.pii import PiiCipher, seal_reporter
from phoihop_ingest.exceptions import StoreUnavailableError
from phoihop_ingest.idempotency import (
    Claim,
    ClaimState,
    IdempotencyStore,
    body_hash,
    recommendation_id,
)
from phoihop_ingest.publisher import Publisher
from phoihop_schemas.codec import encode
from phoihop_schemas.events import Received, Submission
from phoihop_schemas.topics import CANONICAL

log = get_logger(__name__)

SOURCE = "/phoihop/ingest"
RECEIVED_TOPIC = CANONICAL["received"].name


@dataclass(frozen=True)
class Pending:
    """A validated submission waiting to be put on the bus."""

    submission: Submission
    agency: str
    key: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What became of one submission: its id (maybe a duplicate), or a conflict."""

    id: str | None
    duplicate: bool = False
    error: str | None = None
    detail: str | None = None


def received_event(
    *, rec_id: str, submission: Submission, agency: str, now: datetime, cipher: PiiCipher
) -> Received:
    """The `received` event of a submission (sequence 1), its reporter encrypted."""
    reporter = submission.reporter
    return Received(
        recommendation_id=rec_id,
        sequence=1,
        occurred_at=now,
        kind=submission.kind,
        channel=submission.channel,
        locality=submission.locality,
        text=submission.text,
        submitted_at=submission.submitted_at,
        reporter=seal_reporter(reporter, recommendation_id=rec_id, cipher=cipher)
        if reporter is not None
        else None,
        source_ref=submission.source_ref,
        submitted_by=agency,
    )


async def submit_many(
    *, items: Sequence[Pending], publisher: Publisher, store: IdempotencyStore, cipher: PiiCipher
) -> list[Outcome]:
    """Put submissions on the bus; outcomes in input order. Raises UnavailableError."""
    outcomes: list[Outcome | None] = [None] * len(items)
    first_of: dict[tuple[str, str], tuple[int, str]] = {}  # key -> (index, hash) in this batch
    claims: list[Claim] = []
    for i, item in enumerate(items):
        if item.key is None:
            continue
        ident = (item.agency, item.key)
        hashed = body_hash(item.submission)
        if ident in first_of:
            j, first_hash = first_of[ident]
            outcomes[i] = (
                Outcome(id=f"@{j}", duplicate=True) if first_hash == hashed else _conflict(item.key)
            )
            continue
        first_of[ident] = (i, hashed)
        claims.append(
            Claim(
                agency=item.agency,
                key=item.key,
                recommendation_id=recommendation_id(agency=item.agency, key=item.key),
                body_hash=hashed,
            )
        )
    states = await asyncio.to_thread(store.claim, claims) if claims else {}

    now = datetime.now(UTC)
    to_produce: list[tuple[int, str]] = []
    produced_keys: list[tuple[str, str]] = []
    for i, item in enumerate(items):
        if outcomes[i] is not None:
            continue
        if item.key is None:
            to_produce.append((i, str(uuid.uuid4())))
            continue
        rec_id = recommendation_id(agency=item.agency, key=item.key)
        state = states[(item.agency, item.key)]
        if state is ClaimState.CONFLICT:
            outcomes[i] = _conflict(item.key)
        elif state is ClaimState.DONE:
            outcomes[i] = Outcome(id=rec_id, duplicate=True)
        else:
            to_produce.append((i, rec_id))
            produced_keys.append((item.agency, item.key))

    records = [
        encode(
            received_event(
                rec_id=rec_id,
                submission=items[i].submission,
                agency=items[i].agency,
                now=now,
                cipher=cipher,
            ),
            source=SOURCE,
            time=now,
        )
        for i, rec_id in to_produce
    ]
    await publisher.publish(RECEIVED_TOPIC, records)
    for i, rec_id in to_produce:
        outcomes[i] = Outcome(id=rec_id)
    if produced_keys:
        try:
            await asyncio.to_thread(store.mark_done, produced_keys)
        except StoreUnavailableError as exc:
            # The events are durable on the broker; a retry finds `pending` and re-produces
            # the same event id, which consumers drop.
            log.warning("idempotency_mark_failed", error=str(exc))

    final: list[Outcome] = []
    for o in outcomes:
        assert o is not None
        if o.id is not None and o.id.startswith("@"):
            first = outcomes[int(o.id[1:])]
            assert first is not None
            o = Outcome(id=first.id, duplicate=True, error=first.error, detail=first.detail)
        final.append(o)
    return final


def _conflict(key: str) -> Outcome:
    return Outcome(
        id=None,
        error="idempotency_key_reused",
        detail=f"key {key!r} was already used with a different submission",
    )
