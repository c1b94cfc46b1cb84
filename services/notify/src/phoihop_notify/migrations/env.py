"""Alembic environment of notify: runs on the connection handed over by `db.migrate`."""

from alembic import context

from phoihop_notify.models import metadata

VERSION_TABLE = "alembic_version_notify"

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
