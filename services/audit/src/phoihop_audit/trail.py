"""Storing events exactly once in the append-only, hash-chained log, with the read model.

One transaction per batch: skip what is already stored (after proving it is the same event),
chain the rest after the log head, move the head (a conditional move from the head this
process last wrote, or, when another writer moved it since, under a locked read), append the
records with their chain and leaf hashes, and re-project every touched recommendation.
Offsets are committed by the caller afterwards.
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

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


def record_hashes(row: dict[str, Any]) -> tuple[str, str]:
    """(`chain_hash`, `leaf_hash_hex`) of the record, its canonical bytes built once."""
    body = record_bytes(row)
    return hashlib.sha256(body).hexdigest(), merkle.leaf_hash(body).hex()


def content_json(*, event_id: str, event_type: str, data_json: str) -> str:
    """`canonical_json({"id": event_id, "type": event_type, "data": data})`, given the data's.

    Sorted, the keys are data < id < type, so the object is those members in that order;
    the data is not serialised a second time.
    """
    return (
        f'{{"data":{data_json},"id":{canonical_json(event_id)},'
        f'"type":{canonical_json(event_type)}}}'
    )


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
    said = canonical_json(full)
    content = content_json(event_id=envelope.id, event_type=envelope.event_name, data_json=said)
    digest = cipher.digest(content.encode())
    if reporter is not None:
        full["reporter"] = None
        stored = canonical_json(full)
    else:
        stored = said
    return Incoming(
        event_id=envelope.id,
        type=envelope.event_name,
        recommendation_id=rec_id,
        sequence=sequence,
        source=envelope.source,
        event_time=envelope.time.isoformat() if envelope.time else None,
        data=stored,
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


# Statements built once (construction and cache-key generation are per object, not per call).
_HEAD_LOCKED = (
    select(log_head.c.size, log_head.c.head_hash).where(log_head.c.id == HEAD_ID).with_for_update()
)
_KNOWN_ONE = select(events.c.event_id, events.c.content_digest).where(
    events.c.event_id == bindparam("id")
)
_KNOWN_MANY = select(events.c.event_id, events.c.content_digest).where(
    events.c.event_id.in_(bindparam("ids", expanding=True))
)
# Moves the head only from where this process last left it: 0 rows when another writer
# (a replica, a checkpointer that does not write the head, a repair) moved it since.
_HEAD_MOVE_FROM = (
    update(log_head)
    .where(
        log_head.c.id == HEAD_ID,
        log_head.c.size == bindparam("old_size"),
        log_head.c.head_hash == bindparam("old_hash"),
    )
    .values(size=bindparam("new_size"), head_hash=bindparam("new_hash"))
)
_HEAD_MOVE = (
    update(log_head)
    .where(log_head.c.id == HEAD_ID)
    .values(size=bindparam("new_size"), head_hash=bindparam("new_hash"))
)
_INSERT_EVENTS = insert(events)
_LIFECYCLE_COLUMNS = (events.c.recommendation_id, events.c.type, events.c.sequence, events.c.data)
_LIFECYCLE_ONE = select(*_LIFECYCLE_COLUMNS).where(
    events.c.recommendation_id == bindparam("id"), events.c.sequence.is_not(None)
)
_LIFECYCLE_MANY = select(*_LIFECYCLE_COLUMNS).where(
    events.c.recommendation_id.in_(bindparam("ids", expanding=True)),
    events.c.sequence.is_not(None),
)
_DELETE_INVOLVEMENT_ONE = delete(involvement).where(involvement.c.via == bindparam("id"))
_DELETE_INVOLVEMENT = delete(involvement).where(
    involvement.c.via.in_(bindparam("ids", expanding=True))
)
_INSERT_INVOLVEMENT = insert(involvement)

# The head as this process's last committed append left it, per engine: a hint that saves
# reading (and, on PostgreSQL, locking) the head before knowing whether anything is new.
# It is only ever trusted through `_HEAD_MOVE_FROM`, which checks it against the database.
_heads: weakref.WeakKeyDictionary[Engine, tuple[int, str]] = weakref.WeakKeyDictionary()
_heads_lock = threading.Lock()


def _known(conn: Connection, ids: Sequence[str]) -> dict[str, str]:
    if len(ids) == 1:
        rows = conn.execute(_KNOWN_ONE, {"id": ids[0]}).all()
    else:
        rows = conn.execute(_KNOWN_MANY, {"ids": list(ids)}).all()
    return {r[0]: r[1] for r in rows}


def _plan(
    batch: Sequence[Incoming],
    known: dict[str, str],
    *,
    size: int,
    prev: str,
    cipher: PiiCipher,
) -> tuple[AppendResult, list[dict[str, Any]], set[str]]:
    """The new records chained after (size, prev), and what the batch does (pure)."""
    result = AppendResult()
    known = dict(known)
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
        row["hash"], row["leaf_hash"] = record_hashes(row)
        rows.append(row)
        known[item.event_id] = item.digest
        prev, size = row["hash"], size + 1
        result.stored.append(item)
        if item.sequence is not None:
            touched.add(item.recommendation_id)
    return result, rows, touched


def append(engine: Engine, batch: Sequence[Incoming], *, cipher: PiiCipher) -> AppendResult:
    """Store a batch exactly once and update the read model, in one transaction.

    The head is read under lock only when this process has no hint of it or the hint is
    stale; otherwise the conditional head move is both the lock and the check that no
    other writer appended since (the log only grows, so an unchanged head means the
    duplicate check above it saw every stored event).
    """
    if not batch:
        return AppendResult()
    ids = list(dict.fromkeys(i.event_id for i in batch))
    with _heads_lock:
        hint = _heads.get(engine)
    moved = False
    with engine.execution_options(**WRITE).begin() as conn:
        if hint is not None:
            size, prev = hint
            known = _known(conn, ids)
            result, rows, touched = _plan(batch, known, size=size, prev=prev, cipher=cipher)
            new_size = size + len(rows)
            new_hash = rows[-1]["hash"] if rows else prev
            moved = not rows or (
                conn.execute(
                    _HEAD_MOVE_FROM,
                    {
                        "old_size": size,
                        "old_hash": prev,
                        "new_size": new_size,
                        "new_hash": new_hash,
                    },
                ).rowcount
                == 1
            )
        if not moved:
            head = conn.execute(_HEAD_LOCKED).one()
            size, prev = int(head.size), head.head_hash
            known = _known(conn, ids)
            result, rows, touched = _plan(batch, known, size=size, prev=prev, cipher=cipher)
            new_size = size + len(rows)
            new_hash = rows[-1]["hash"] if rows else prev
            if rows:
                conn.execute(_HEAD_MOVE, {"new_size": new_size, "new_hash": new_hash})
        if rows:
            conn.execute(_INSERT_EVENTS, rows)
        refresh_recommendations(conn, sorted(touched))
    with _heads_lock:
        _heads[engine] = (new_size, new_hash)
    return result


def _lifecycle_rows(conn: Connection, rec_ids: Sequence[str]) -> dict[str, list[StoredEvent]]:
    out: dict[str, list[StoredEvent]] = {r: [] for r in rec_ids}
    for i in range(0, len(rec_ids), CHUNK):
        chunk = rec_ids[i : i + CHUNK]
        if len(chunk) == 1:
            found = conn.execute(_LIFECYCLE_ONE, {"id": chunk[0]})
        else:
            found = conn.execute(_LIFECYCLE_MANY, {"ids": list(chunk)})
        for rec_id, type_, sequence, data in found:
            out[rec_id].append(StoredEvent(type=type_, sequence=sequence, data=json.loads(data)))
    return out


def load_projection(conn: Connection, rec_id: str) -> Projection | None:
    """Project one recommendation from its stored lifecycle events (None if none)."""
    stored = _lifecycle_rows(conn, [rec_id])[rec_id]
    return project(rec_id, stored) if stored else None


def _upsert_recommendations(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Replace the read-model rows (one upsert where the dialect has it, else delete+insert)."""
    name = conn.dialect.name
    if name not in ("sqlite", "postgresql"):
        conn.execute(
            delete(recommendations).where(recommendations.c.id.in_([r["id"] for r in rows]))
        )
        conn.execute(insert(recommendations), rows)
        return
    conn.execute(_upsert_statement(name, tuple(rows[0])), rows)


_UPSERTS: dict[tuple[str, tuple[str, ...]], Any] = {}


def _upsert_statement(dialect: str, columns: tuple[str, ...]) -> Any:
    """INSERT … ON CONFLICT (id) DO UPDATE every other column, built once per column set."""
    key = (dialect, columns)
    stmt = _UPSERTS.get(key)
    if stmt is None:
        make = postgresql_insert if dialect == "postgresql" else sqlite_insert
        base = make(recommendations)
        stmt = base.on_conflict_do_update(
            index_elements=[recommendations.c.id],
            set_={c: base.excluded[c] for c in columns if c != "id"},
        )
        _UPSERTS[key] = stmt
    return stmt


def refresh_recommendations(conn: Connection, rec_ids: Sequence[str]) -> None:
    """Recompute the read-model rows and involvement rows of some recommendations."""
    if not rec_ids:
        return
    projections = [project(r, st) for r, st in _lifecycle_rows(conn, rec_ids).items() if st]
    for i in range(0, len(projections), CHUNK):
        chunk = projections[i : i + CHUNK]
        ids = [p.id for p in chunk]
        _upsert_recommendations(conn, [p.row() for p in chunk])
        if len(ids) == 1:
            conn.execute(_DELETE_INVOLVEMENT_ONE, {"id": ids[0]})
        else:
            conn.execute(_DELETE_INVOLVEMENT, {"ids": ids})
        links = [
            {"recommendation_id": r, "agency": a, "relation": rel, "via": p.id}
            for p in chunk
            for r, a, rel in sorted(p.involvement())
        ]
        if links:
            conn.execute(_INSERT_INVOLVEMENT, links)
