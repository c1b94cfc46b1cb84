"""Faust tables written with an explicit changelog partition, and the bucket-member codec.

Faust sends a table write to the changelog partition of the event being processed
(`current_event()`). The agents process records in batches (`RoutingStream.take_ready`), where
the "current" event is the last of the batch and may come from another partition, so every
write names the partition of the record that caused it (`PartitionedTable.put` /
`remove`): the changelog partition always equals the source partition, which is what
recovery relies on (changelog partition p is restored on the worker owning partition p).

Duplicate buckets are stored one entry per open case (`member_key(bucket, case)` ->
`CaseSignature`), not one list per bucket: a write costs one signature, whatever the
bucket's size (a list value would re-serialise every open case of the bucket to the
changelog on each change). The values are kept as `CaseSignature` objects in the memory
store (`SignatureCodec` turns them into JSON only for the changelog), with their strings
interned, so 100,000 open cases stay small.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import faust
from faust.serializers import codecs
from faust.stores import STORES

from phoihop_routing.duplicates import CaseSignature

_WRITE_PARTITION: ContextVar[int | None] = ContextVar("routing_write_partition", default=None)
MEMBER_SEP = "#"


class PartitionedTable(faust.Table[Any, Any]):
    """A faust Table whose writes can name their changelog partition."""

    def __init__(self, *args: Any, value_serializer: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if value_serializer is not None:
            # faust derives it from value_type; store and changelog topic are made lazily
            self.value_serializer = value_serializer

    def partition_for_key(self, key: Any) -> int | None:
        """The partition set by `put`/`remove`, else faust's (the current event's)."""
        partition = _WRITE_PARTITION.get()
        if partition is not None:
            return partition
        result: int | None = super().partition_for_key(key)
        return result

    def put(self, key: Any, value: Any, *, partition: int) -> None:
        """`table[key] = value`, logged to changelog `partition`."""
        token = _WRITE_PARTITION.set(partition)
        try:
            self[key] = value
        finally:
            _WRITE_PARTITION.reset(token)

    def remove(self, key: Any, *, partition: int) -> None:
        """`del table[key]` (when present), logged to changelog `partition`."""
        if key not in self:
            return
        token = _WRITE_PARTITION.set(partition)
        try:
            del self[key]
        finally:
            _WRITE_PARTITION.reset(token)


ROCKSDB_SCHEME = "phoihop-rocksdb"


def store_url(url: str) -> str:
    """The store URL faust gets: `rocksdb://` becomes our partition-aware RocksDB store."""
    if url.startswith("rocksdb://"):
        STORES.aliases[ROCKSDB_SCHEME] = "phoihop_routing.rocksdb_store:PartitionedRocksStore"
        return ROCKSDB_SCHEME + url[len("rocksdb") :]
    return url


def write_partition() -> int | None:
    """The changelog partition named by the `put`/`remove` in progress, if any."""
    return _WRITE_PARTITION.get()


def partitioned_table(app: faust.App, name: str, **kwargs: Any) -> PartitionedTable:
    """Register a `PartitionedTable` with the app (what `app.Table` does for its own class)."""
    table = PartitionedTable(app, name=name, beacon=app.tables.beacon, **kwargs)
    app.tables.add(table)
    return table


def member_key(bucket: str, recommendation_id: str) -> str:
    """Table key of one open case in a duplicate bucket."""
    return f"{bucket}{MEMBER_SEP}{recommendation_id}"


def split_member_key(key: str) -> tuple[str, str]:
    """(bucket, recommendation id) of a member key (ids never contain the separator)."""
    bucket, _, rec_id = key.rpartition(MEMBER_SEP)
    return bucket, rec_id


def _interned(values: Any) -> tuple[str, ...]:
    return tuple(sys.intern(str(v)) for v in values or ())


def compact_signature(data: dict[str, Any]) -> CaseSignature:
    """A CaseSignature from its dict, strings interned (shared between the open cases)."""
    sig = CaseSignature.from_dict(data)
    return CaseSignature(
        recommendation_id=sig.recommendation_id,
        locality=sys.intern(sig.locality),
        bucket=sys.intern(sig.bucket),
        kind=sys.intern(sig.kind),
        category=sys.intern(sig.category),
        level=sys.intern(sig.level),
        words=_interned(sig.words),
        pairs=_interned(sig.pairs),
        concepts=_interned(sig.concepts),
        field_concepts=_interned(sig.field_concepts),
        identifiers=_interned(sig.identifiers),
        names=_interned(sig.names),
        version=sys.intern(sig.version),
    )


class SignatureCodec(codecs.Codec):
    """CaseSignature <-> compact JSON bytes (changelog of the bucket-member table)."""

    def _dumps(self, s: Any) -> bytes:
        data = s.to_dict() if isinstance(s, CaseSignature) else s
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()

    def _loads(self, s: bytes) -> Any:
        return compact_signature(json.loads(s))


def iter_members(table: Any) -> Iterator[tuple[str, str, CaseSignature]]:
    """(bucket, recommendation id, signature) of every entry of a bucket-member table."""
    for key, value in list(table.items()):
        if value is None:
            continue
        sig = value if isinstance(value, CaseSignature) else compact_signature(value)
        bucket, rec_id = split_member_key(str(key))
        yield bucket, rec_id, sig
