"""Tamper evidence over the stored log: signed checkpoints, proofs, and full verification.

The public side is cheap by construction: `verify_latest_checkpoint` checks one signature,
proofs of a fixed tree are cached (`ProofCache`: the log only grows, so a proof of tree size
n never changes) and computed a few at a time, and the full re-hash (`verify_log`) goes
through `FullVerifyGate` (one at a time, a few per minute).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from phoihop_audit import merkle
from phoihop_audit.db import GENESIS_HASH, HEAD_ID, checkpoints, events, log_head
from phoihop_audit.exceptions import BadRequestError, NotFoundError, TooManyRequestsError
from phoihop_audit.keys import Signer
from phoihop_audit.trail import chain_hash, leaf_hash_hex

CHECKPOINT_ORIGIN = "phoihop-audit-log/v1"


def checkpoint_message(*, tree_size: int, root_hash: str, created_at: str) -> bytes:
    """The bytes a checkpoint signature covers (a signed-note style body)."""
    return f"{CHECKPOINT_ORIGIN}\n{tree_size}\n{root_hash}\n{created_at}\n".encode()


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement of the tree size and root at a moment."""

    tree_size: int
    root_hash: str
    created_at: str
    key_id: str
    signature: str

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "created_at": self.created_at,
            "key_id": self.key_id,
            "signature": self.signature,
        }


def verify_checkpoint(checkpoint: Checkpoint, *, signer: Signer) -> bool:
    """True when the checkpoint's signature is valid under a trusted key."""
    message = checkpoint_message(
        tree_size=checkpoint.tree_size,
        root_hash=checkpoint.root_hash,
        created_at=checkpoint.created_at,
    )
    return signer.verify(kid=checkpoint.key_id, message=message, signature=checkpoint.signature)


def leaf_hashes(engine: Engine, *, upto: int | None = None) -> list[bytes]:
    """Stored leaf hashes in log order (the first `upto` of them)."""
    query = select(events.c.leaf_hash).order_by(events.c.position)
    if upto is not None:
        query = query.where(events.c.position < upto)
    with engine.connect() as conn:
        return [bytes.fromhex(h) for (h,) in conn.execute(query)]


def log_size(engine: Engine) -> int:
    """Number of records the log head says are stored."""
    with engine.connect() as conn:
        return int(
            conn.execute(select(log_head.c.size).where(log_head.c.id == HEAD_ID)).scalar_one()
        )


def list_checkpoints(engine: Engine, *, limit: int = 100) -> list[Checkpoint]:
    """Newest checkpoints first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(checkpoints).order_by(checkpoints.c.tree_size.desc()).limit(limit)
        ).all()
    return [_checkpoint(r._mapping) for r in rows]


def get_checkpoint(engine: Engine, tree_size: int) -> Checkpoint:
    """The checkpoint of one tree size."""
    with engine.connect() as conn:
        row = conn.execute(select(checkpoints).where(checkpoints.c.tree_size == tree_size)).first()
    if row is None:
        raise NotFoundError(f"no checkpoint of size {tree_size}")
    return _checkpoint(row._mapping)


def _checkpoint(m: Any) -> Checkpoint:
    return Checkpoint(
        tree_size=int(m["tree_size"]),
        root_hash=m["root_hash"],
        created_at=m["created_at"],
        key_id=m["key_id"],
        signature=m["signature"],
    )


def make_checkpoint(engine: Engine, *, signer: Signer) -> Checkpoint | None:
    """Sign the current tree if it grew since the last checkpoint; None when nothing new."""
    size = log_size(engine)
    latest = list_checkpoints(engine, limit=1)
    if size == 0 or (latest and latest[0].tree_size >= size):
        return None
    root_hash = merkle.root(leaf_hashes(engine, upto=size)).hex()
    created = datetime.now(UTC).isoformat()
    cp = Checkpoint(
        tree_size=size,
        root_hash=root_hash,
        created_at=created,
        key_id=signer.key_id,
        signature=signer.sign(
            checkpoint_message(tree_size=size, root_hash=root_hash, created_at=created)
        ),
    )
    try:
        with engine.begin() as conn:
            conn.execute(insert(checkpoints).values(**cp.as_dict()))
    except IntegrityError:  # another replica signed the same size: same tree, same root
        return None
    return cp


class ProofCache:
    """Proofs of fixed trees, least recently used out; at most `concurrent` computed at once."""

    def __init__(self, *, size: int = 1024, concurrent: int = 2, wait: float = 5.0) -> None:
        self.size = size
        self.wait = wait
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._computing = threading.BoundedSemaphore(concurrent)

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The cached value of `key`, else `compute()` (429 when too many are computing)."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        if not self._computing.acquire(timeout=self.wait):
            raise TooManyRequestsError("proofs are being computed; try again", retry_after=1)
        try:
            value = compute()
        finally:
            self._computing.release()
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return value


class FullVerifyGate:
    """Admits one full re-hash at a time and at most `per_minute` a minute (this process)."""

    def __init__(self, *, per_minute: int = 6, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._running = threading.Lock()
        self._lock = threading.Lock()
        self._started: deque[float] = deque()

    def run(self, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run `work` if admitted, else raise TooManyRequestsError with the wait."""
        if not self._running.acquire(blocking=False):
            raise TooManyRequestsError("a full verification is running", retry_after=5)
        try:
            self._admit()
            return work()
        finally:
            self._running.release()

    def _admit(self) -> None:
        now = self.clock()
        with self._lock:
            while self._started and now - self._started[0] >= 60.0:
                self._started.popleft()
            if len(self._started) >= self.per_minute:
                wait = 60.0 - (now - self._started[0])
                raise TooManyRequestsError(
                    f"at most {self.per_minute} full verifications a minute",
                    retry_after=max(1, int(wait + 0.999)),
                )
            self._started.append(now)


def verify_latest_checkpoint(engine: Engine, *, signer: Signer) -> dict[str, Any]:
    """The last signed checkpoint: its signature, tree size, root and time (no re-hash)."""
    latest = list_checkpoints(engine, limit=1)
    size = log_size(engine)
    if not latest:
        return {"ok": True, "mode": "checkpoint", "checkpoint": None, "log_size": size}
    cp = latest[0]
    signed = verify_checkpoint(cp, signer=signer)
    within = cp.tree_size <= size  # a log shorter than what it signed lost records
    return {
        "ok": signed and within,
        "mode": "checkpoint",
        "checkpoint": cp.as_dict(),
        "signature_valid": signed,
        "tree_size": cp.tree_size,
        "root_hash": cp.root_hash,
        "created_at": cp.created_at,
        "log_size": size,
        "first_bad": None
        if signed and within
        else {
            "checkpoint": cp.tree_size,
            "reason": "bad_checkpoint_signature" if not signed else "log_shorter_than_checkpoint",
        },
    }


def inclusion(
    engine: Engine, *, event_id: str, tree_size: int | None, cache: ProofCache | None = None
) -> dict[str, Any]:
    """Inclusion proof of one event in the tree of `tree_size` (default: latest checkpoint)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(events.c.position, events.c.leaf_hash).where(events.c.event_id == event_id)
        ).first()
    if row is None:
        raise NotFoundError(f"event {event_id} not stored")
    if tree_size is None:
        latest = list_checkpoints(engine, limit=1)
        if not latest:
            raise NotFoundError("no checkpoint yet")
        tree_size = latest[0].tree_size
    if not int(row.position) < tree_size <= log_size(engine):
        raise BadRequestError(
            "bad_tree_size", f"event at {row.position} is not within a tree of size {tree_size}"
        )
    index, size = int(row.position), tree_size

    def compute() -> tuple[str, list[str]]:
        leaves = leaf_hashes(engine, upto=size)
        path = [h.hex() for h in merkle.inclusion_proof(index, leaves)]
        return merkle.root(leaves).hex(), path

    key = ("inclusion", index, size)
    root_hash, path = compute() if cache is None else cache.get(key, compute)
    return {
        "event_id": event_id,
        "leaf_index": index,
        "tree_size": size,
        "leaf_hash": row.leaf_hash,
        "root_hash": root_hash,
        "audit_path": list(path),
    }


def consistency(
    engine: Engine, *, first: int, second: int, cache: ProofCache | None = None
) -> dict[str, Any]:
    """Consistency proof between two checkpointed tree sizes."""
    if not 0 < first <= second:
        raise BadRequestError("bad_tree_size", "need 0 < first <= second")
    a, b = get_checkpoint(engine, first), get_checkpoint(engine, second)

    def compute() -> list[str]:
        leaves = leaf_hashes(engine, upto=second)
        return [h.hex() for h in merkle.consistency_proof(first, leaves)]

    proof = compute() if cache is None else cache.get(("consistency", first, second), compute)
    return {"first": a.as_dict(), "second": b.as_dict(), "proof": list(proof)}


def verify_log(engine: Engine, *, signer: Signer) -> dict[str, Any]:
    """Re-check every record's chain and leaf hash, the head, and every checkpoint's root."""
    first_bad: dict[str, Any] | None = None
    leaves: list[bytes] = []
    prev = GENESIS_HASH
    expected = 0
    with engine.connect() as conn:
        head = conn.execute(select(log_head).where(log_head.c.id == HEAD_ID)).one()
        cps = [
            _checkpoint(r._mapping)
            for r in conn.execute(select(checkpoints).order_by(checkpoints.c.tree_size))
        ]
        for r in conn.execute(select(events).order_by(events.c.position)):
            row = dict(r._mapping)
            position = int(row["position"])
            if position != expected:
                first_bad = {
                    "position": expected,
                    "event_id": None,
                    "reason": "missing_record",
                    "detail": f"position {expected} absent; next stored is {position} "
                    f"({row['event_id']})",
                }
                break
            reason = None
            if row["prev_hash"] != prev:
                reason = "prev_hash_mismatch"
            elif chain_hash(row) != row["hash"]:
                reason = "hash_mismatch"
            elif leaf_hash_hex(row) != row["leaf_hash"]:
                reason = "leaf_hash_mismatch"
            if reason:
                first_bad = {
                    "position": position,
                    "event_id": row["event_id"],
                    "recommendation_id": row["recommendation_id"],
                    "sequence": row["sequence"],
                    "reason": reason,
                }
                break
            leaves.append(bytes.fromhex(row["leaf_hash"]))
            prev = row["hash"]
            expected += 1
    checked = len(leaves)
    if first_bad is None and (int(head.size) != checked or head.head_hash != prev):
        first_bad = {
            "position": checked,
            "event_id": None,
            "reason": "head_mismatch",
            "detail": f"head says {head.size} records ending {head.head_hash[:12]}, "
            f"found {checked} ending {prev[:12]}",
        }
    latest: Checkpoint | None = cps[-1] if cps else None
    if first_bad is None:
        roots = merkle.prefix_roots(leaves, [c.tree_size for c in cps])
        for cp in cps:
            if not verify_checkpoint(cp, signer=signer):
                first_bad = {"checkpoint": cp.tree_size, "reason": "bad_checkpoint_signature"}
            elif cp.tree_size not in roots or roots[cp.tree_size].hex() != cp.root_hash:
                first_bad = {"checkpoint": cp.tree_size, "reason": "checkpoint_root_mismatch"}
            if first_bad:
                break
    return {
        "ok": first_bad is None,
        "mode": "full",
        "checked": checked,
        "head_hash": prev,
        "checkpoint": latest.as_dict() if latest else None,
        "first_bad": first_bad,
    }
