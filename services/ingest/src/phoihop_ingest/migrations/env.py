"""Alembic environment: runs on the connection handed over by `phoihop_common.db.migrate`."""

from __future__ import annotations

from phoihop_common.db import run_migrations
from phoihop_ingest.idempotency import VERSION_TABLE, metadata

run_migrations(metadata=metadata, version_table=VERSION_TABLE)
