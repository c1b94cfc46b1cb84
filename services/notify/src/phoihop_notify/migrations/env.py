"""Alembic environment: runs on the connection handed over by `phoihop_common.db.migrate`."""

from __future__ import annotations

from phoihop_common.db import run_migrations
from phoihop_notify.models import metadata

run_migrations(metadata=metadata, version_table="alembic_version_notify")
