"""faust's RocksDB store (rocksdict), made safe for batched processing.

faust's store puts a key into the RocksDB of `current_event()`'s partition (and asserts
there is one) and reads from that partition's DB first. Routing writes in batches that mix
partitions (see `tables.py`), so this store puts each key into the DB of the partition the
write names (`PartitionedTable.put`) and always looks keys up by its key index / all DBs.
"""

from __future__ import annotations

from faust.stores import rocksdb

from phoihop_routing.tables import write_partition


class PartitionedRocksStore(rocksdb.Store):
    """RocksDB store whose writes go to the partition named by the table write."""

    def _set(self, key: bytes, value: bytes | None) -> None:
        partition = write_partition()
        if partition is None:
            super()._set(key, value)
            return
        self._key_index[key] = partition
        self._db_for_partition(partition).put(key, value)

    def _get(self, key: bytes) -> bytes | None:
        found = self._get_bucket_for_key(key)
        return None if found is None else found[1]
