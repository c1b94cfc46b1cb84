"""Storing events exactly once in the append-only, hash-chained log, with the read model.

One transaction per batch: lock the log head, skip what is already stored (after proving it
is the same event), append the rest with their chain and leaf hashes, move the head, and
re-project every touched recommendation. Offsets are committed by the caller afterwards.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from phoihop_audit import merkle
from phoihop_audit.db import HEAD_ID, WRITE, events, involvement, log_head, recommendations
from phoihop_audit.readmodel import Projection, StoredEvent, project
from phoihop_common.pii import PiiCipher, open_reporter
from phoihop_schemas.codec import Envelope
from phoihop_schemas.events import LifecycleEvent, Received

CHUNK = 500


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_bytes(row: dict[str, Any]) -> bytes:
    """The canonical bytes of one log record: what the chain hash and the Merkle leaf cover."""
    return canonical_json(
        {
            "v": 1,
            "position": int(row["position"]),
            "event_id": row["event_id"],
            "type": row["type"],
            "recommendation_id": row["recommendation_id"],
            "sequence": row["sequence"],
            "source": row["source"],
            "event_time": row["event_time"],
            "data": row["data"],
            "reporter_enc": row["reporter_enc"],
            "content_digest": row["content_digest"],
            "stored_at": row["stored_at"],
            "prev_hash": row["prev_hash"],
        }
    ).encode()


def chain_hash(row: dict[str, Any]) -> str:
    """SHA-256 of the record (which names its predecessor's hash)."""
    return hashlib.sha256(record_bytes(row)).hexdigest()


def leaf_hash_hex(row: dict[str, Any]) -> str:
    """RFC 6962 leaf hash of the record."""
    return merkle.leaf_hash(record_bytes(row)).hex()


@dataclass(frozen=True)
class Incoming:
    """A decoded event prepared for storage."""

    event_id: str
    type: str
    recommendation_id: str
    sequence: int | None
    source: str
    event_time: str | None
    data: str
    reporter_plain: bytes | None
    digest: str
    # The same content digested under every key of the ring: a redelivery after a key
    # rotation is still recognised as the event already stored.
    known_digests: frozenset[str] = frozenset()


def prepare(envelope: Envelope, *, cipher: PiiCipher) -> Incoming:
    """Open the reporter (stored apart, encrypted), digest the plain content; PiiDecryptError."""
    model = envelope.data
    full = model.model_dump(mode="json")
    rec_id = str(full.get("recommendation_id") or envelope.subject or "")
    sequence = model.sequence if isinstance(model, LifecycleEvent) else None
    reporter = None
    if isinstance(model, Received) and model.reporter is not None:
        plain = open_reporter(
            model.reporter, recommendation_id=model.recommendation_id, cipher=cipher
        )
        reporter = plain.model_dump(mode="json")
        # Digest what was said, not this encryption of it (a fresh nonce on every produce).
        full["reporter"] = reporter
    content = canonical_json({"id": envelope.id, "type": envelope.event_name, "data": full})
    digest = cipher.digest(content.encode())
    if reporter is not None:
        full["reporter"] = None
    return Incoming(
        event_id=envelope.id,
        type=envelope.event_name,
        recommendation_id=rec_id,
        sequence=sequence,
        source=envelope.source,
        event_time=envelope.time.isoformat() if envelope.time else None,
        data=canonical_json(full),
        reporter_plain=canonical_json(reporter).encode() if reporter is not None else None,
        digest=digest,
        known_digests=cipher.digests(content.encode()),
    )


@dataclass
class AppendResult:
    """What one batch did."""

    stored: list[Incoming] = field(default_factory=list)
    duplicates: list[Incoming] = field(default_factory=list)
    conflicts: list[Incoming] = field(default_factory=list)


def append(engine: Engine, batch: Sequence[Incoming], *, cipher: PiiCipher) -> AppendResult:
    """Store a batch exactly once and update the read model, in one transaction."""
    result = AppendResult()
    if not batch:
        return result
    with engine.execution_options(**WRITE).begin() as conn:
        head = conn.execute(
            select(log_head.c.size, log_head.c.head_hash)
            .where(log_head.c.id == HEAD_ID)
            .with_for_update()
        ).one()
        size, prev = int(head.size), head.head_hash
        ids = list({i.event_id for i in batch})
        known: dict[str, str] = dict(
            conn.execute(
                select(events.c.event_id, events.c.content_digest).where(events.c.event_id.in_(ids))
            ).all()
        )
        touched: set[str] = set()
        rows: list[dict[str, Any]] = []
        now = datetime.now(UTC).isoformat()
        for item in batch:
            if item.event_id in known:
                if known[item.event_id] in item.known_digests | {item.digest}:
                    result.duplicates.append(item)
                else:
                    result.conflicts.append(item)
                continue
            row: dict[str, Any] = {
                "position": size,
                "event_id": item.event_id,
                "type": item.type,
                "recommendation_id": item.recommendation_id,
                "sequence": item.sequence,
                "source": item.source,
                "event_time": item.event_time,
                "data": item.data,
                "reporter_enc": cipher.encrypt(item.reporter_plain)
                if item.reporter_plain is not None
                else None,
                "content_digest": item.digest,
                "stored_at": now,
                "prev_hash": prev,
            }
            row["hash"] = chain_hash(row)
            row["leaf_hash"] = leaf_hash_hex(row)
            rows.append(row)
            known[item.event_id] = item.digest
            prev, size = row["hash"], size + 1
            result.stored.append(item)
            if item.sequence is not None:
                touched.add(item.recommendation_id)
        if rows:
            conn.execute(insert(events), rows)
            conn.execute(
                update(log_head).where(log_head.c.id == HEAD_ID).values(size=size, head_hash=prev)
            )
        refresh_recommendations(conn, sorted(touched))
    return result


def _lifecycle_rows(conn: Connection, rec_ids: Sequence[str]) -> dict[str, list[StoredEvent]]:
    out: dict[str, list[StoredEvent]] = {r: [] for r in rec_ids}
    for i in range(0, len(rec_ids), CHUNK):
        chunk = rec_ids[i : i + CHUNK]
        query = select(
            events.c.recommendation_id, events.c.type, events.c.sequence, events.c.data
        ).where(events.c.recommendation_id.in_(chunk), events.c.sequence.is_not(None))
        for r in conn.execute(query):
            out[r.recommendation_id].append(
                StoredEvent(type=r.type, sequence=r.sequence, data=json.loads(r.data))
            )
    return out


def load_projection(conn: Connection, rec_id: str) -> Projection | None:
    """Project one recommendation from its stored lifecycle events (None if none)."""
    stored = _lifecycle_rows(conn, [rec_id])[rec_id]
    return project(rec_id, stored) if stored else None


def refresh_recommendations(conn: Connection, rec_ids: Sequence[str]) -> None:
    """Recompute the read-model rows and involvement rows of some recommendations."""
    projections = [project(r, st) for r, st in _lifecycle_rows(conn, rec_ids).items() if st]
    for i in range(0, len(projections), CHUNK):
        chunk = projections[i : i + CHUNK]
        ids = [p.id for p in chunk]
        conn.execute(delete(recommendations).where(recommendations.c.id.in_(ids)))
        conn.execute(insert(recommendations), [p.row() for p in chunk])
        conn.execute(delete(involvement).where(involvement.c.via.in_(ids)))
        links = [
            {"recommendation_id": r, "agency": a, "relation": rel, "via": p.id}
            for p in chunk
            for r, a, rel in sorted(p.involvement())
        ]
        if links:
            conn.execute(insert(involvement), links)
