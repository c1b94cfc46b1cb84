"""The database kit every service uses: one engine recipe, one ping, one Alembic upgrade.

SQLite (embedded default) gets WAL, a busy timeout and SQLAlchemy's own transaction
control (pysqlite's implicit BEGIN off), with `BEGIN IMMEDIATE` for connections that ask
for it through the execution option `WRITE` (writers then queue instead of failing on
upgrade). PostgreSQL URLs always use psycopg 3. `DATABASE_TRANSIENT` lists the errors that
mean "the database is unreachable now", which the consumer kit retries without
dead-lettering anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

WRITE: dict[str, Any] = {"phoihop_write": True}

DATABASE_TRANSIENT: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    DisconnectionError,
    PoolTimeoutError,
)


def make_engine(url: str, *, explicit_transactions: bool = False) -> Engine:
    """An engine for `url` (SQLite file or PostgreSQL through psycopg 3).

    `explicit_transactions` (SQLite): SQLAlchemy issues BEGIN itself, BEGIN IMMEDIATE for
    connections with the `WRITE` execution option, and commits stay fully synchronous —
    what an append-only log needs. Otherwise pysqlite's own transaction handling and
    `synchronous=NORMAL` (WAL keeps that crash-safe for the process).
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=5)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        if explicit_transactions:
            dbapi_connection.isolation_level = None  # SQLAlchemy's BEGIN below takes over
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        if not explicit_transactions:
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    if explicit_transactions:

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            immediate = conn.get_execution_options().get("phoihop_write")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def ping(engine: Engine) -> bool:
    """True when the database answers."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True


@contextlib.contextmanager
def _sqlite_migration_lock(engine: Engine, package: str) -> Iterator[None]:
    """SQLite: replicas sharing the file upgrade one at a time (a lock file beside it).

    Without it two replicas starting together on a fresh file both try to create the
    version table and one fails at startup ("table alembic_version_… already exists").
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with Path(f"{database}.{package}.migrate.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file is closed
        yield


def migrate(engine: Engine, *, package: str) -> None:
    """Upgrade `package`'s schema to head (its `migrations/` folder), one replica at a time."""
    import importlib.resources

    location = importlib.resources.files(package).joinpath("migrations")
    cfg = Config()
    cfg.set_main_option("script_location", str(location))
    lock = zlib.crc32(package.encode())  # a PostgreSQL advisory lock per service
    postgres = engine.dialect.name == "postgresql"
    with _sqlite_migration_lock(engine, package), engine.connect() as conn:
        if postgres:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock})
            conn.commit()
        try:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
        finally:
            if postgres:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock})
                conn.commit()


def run_migrations(*, metadata: MetaData, version_table: str) -> None:
    """Body of every service's Alembic `env.py`: migrate on the connection `migrate` hands over."""
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=version_table,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
