"""Alembic environment: runs on the connection handed over by `phoihop_common.db.migrate`."""

from __future__ import annotations

from phoihop_audit.db import VERSION_TABLE, metadata
from phoihop_common.db import run_migrations

run_migrations(metadata=metadata, version_table=VERSION_TABLE)
