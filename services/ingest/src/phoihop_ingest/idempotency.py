"""Idempotency: deterministic recommendation ids and the `ingest_idempotency` table.

The id of a keyed submission is uuid5(agency, key), so concurrent replicas agree on it
without coordination; the table binds a key to the body it was first used with (a reuse
with another body is refused) and remembers whether the event is already on the broker.
A claim is written before producing (state `pending`) and marked `done` after the broker
acknowledged; a retry that finds `pending` produces again (same id, same event id, so
downstream consumers drop the repeat).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from phoihop_common import db as db_kit
from phoihop_ingest.exceptions import StoreUnavailableError
from phoihop_schemas.codec import MAX_KEY_CHARS, submission_id
from phoihop_schemas.events import Submission

__all__ = [
    "MAX_KEY_CHARS",  # re-exported: callers bound a key to the column's width
    "VERSION_TABLE",
    "Claim",
    "ClaimState",
    "IdempotencyStore",
    "body_hash",
    "idempotency",
    "metadata",
    "recommendation_id",
]

VERSION_TABLE = "alembic_version_ingest"
_CHUNK = 500

metadata = MetaData()

idempotency = Table(
    "ingest_idempotency",
    metadata,
    Column("agency", String(64), primary_key=True),
    Column("key", String(MAX_KEY_CHARS), primary_key=True),
    Column("recommendation_id", String(36), nullable=False),
    Column("body_hash", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("produced_at", DateTime(timezone=True), nullable=True),
)


class ClaimState(StrEnum):
    """What the table says about a key."""

    NEW = "new"  # first use: produce
    PENDING = "pending"  # claimed before, not known to be produced: produce again
    DONE = "done"  # already on the broker: answer with the id, produce nothing
    CONFLICT = "conflict"  # same key, different body


@dataclass(frozen=True)
class Claim:
    """One keyed submission to claim."""

    agency: str
    key: str
    recommendation_id: str
    body_hash: str


def recommendation_id(*, agency: str, key: str) -> str:
    """Id of the recommendation an agency submits under `key` (see `codec.submission_id`)."""
    return submission_id(agency=agency, key=key)


def body_hash(submission: Submission) -> str:
    """Stable hash of a validated submission."""
    canonical = json.dumps(submission.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyStore:
    """Data access for `ingest_idempotency` (synchronous; call it from a worker thread)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.ready = False

    def create_schema(self) -> None:
        """Bring the schema to the newest revision (Alembic, `alembic_version_ingest`)."""
        try:
            db_kit.migrate(self.engine, package="phoihop_ingest")
        except SQLAlchemyError as exc:
            raise StoreUnavailableError("database_unavailable", str(exc)[:300]) from exc
        self.ready = True

    def ping(self) -> bool:
        """True when the database answers."""
        return db_kit.ping(self.engine)

    def claim(self, claims: Sequence[Claim]) -> dict[tuple[str, str], ClaimState]:
        """Claim keys (first use inserts `pending`); the state of each key decides what to do."""
        if not claims:
            return {}
        if not self.ready:
            raise StoreUnavailableError("database_unavailable", "database not initialised yet")
        last: Exception | None = None
        for _ in range(3):
            try:
                return self._claim_once(claims)
            except IntegrityError as exc:  # a concurrent replica inserted the same key
                last = exc
            except SQLAlchemyError as exc:
                raise StoreUnavailableError("database_unavailable", str(exc)[:300]) from exc
        raise StoreUnavailableError("database_conflict", str(last)[:300])

    def _claim_once(self, claims: Sequence[Claim]) -> dict[tuple[str, str], ClaimState]:
        now = datetime.now(UTC)
        result: dict[tuple[str, str], ClaimState] = {}
        with self.engine.begin() as conn:
            existing: dict[tuple[str, str], tuple[str, str]] = {}
            for agency, keys in _by_agency(claims).items():
                for chunk in _chunks(keys):
                    rows = conn.execute(
                        select(idempotency.c.key, idempotency.c.body_hash, idempotency.c.state)
                        .where(idempotency.c.agency == agency)
                        .where(idempotency.c.key.in_(chunk))
                    )
                    for key, hash_, state in rows:
                        existing[(agency, key)] = (hash_, state)
            fresh = []
            for c in claims:
                found = existing.get((c.agency, c.key))
                if found is None:
                    fresh.append(c)
                    result[(c.agency, c.key)] = ClaimState.NEW
                elif found[0] != c.body_hash:
                    result[(c.agency, c.key)] = ClaimState.CONFLICT
                else:
                    result[(c.agency, c.key)] = ClaimState(found[1])
            if fresh:
                conn.execute(
                    idempotency.insert(),
                    [
                        {
                            "agency": c.agency,
                            "key": c.key,
                            "recommendation_id": c.recommendation_id,
                            "body_hash": c.body_hash,
                            "state": ClaimState.PENDING.value,
                            "created_at": now,
                        }
                        for c in fresh
                    ],
                )
        return result

    def mark_done(self, keys: Iterable[tuple[str, str]]) -> None:
        """Record that these keys' events are acknowledged by the broker."""
        now = datetime.now(UTC)
        grouped: dict[str, list[str]] = {}
        for agency, key in keys:
            grouped.setdefault(agency, []).append(key)
        try:
            with self.engine.begin() as conn:
                for agency, agency_keys in grouped.items():
                    for chunk in _chunks(agency_keys):
                        conn.execute(
                            update(idempotency)
                            .where(idempotency.c.agency == agency)
                            .where(idempotency.c.key.in_(chunk))
                            .values(state=ClaimState.DONE.value, produced_at=now)
                        )
        except SQLAlchemyError as exc:
            raise StoreUnavailableError("database_unavailable", str(exc)[:300]) from exc


def _by_agency(claims: Sequence[Claim]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for c in claims:
        grouped.setdefault(c.agency, []).append(c.key)
    return grouped


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]
