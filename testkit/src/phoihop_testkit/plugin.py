"""pytest fixtures shared by every test suite: broker, database, config, whole stack.

Registered for the whole repository by the root conftest.py
(`pytest_plugins = ["phoihop_testkit.plugin"]`).

- Broker: an embedded Tansu per test (it starts in milliseconds), or a real Kafka when
  `PHOIHOP_TEST_KAFKA_BOOTSTRAP` is set (then each stack gets its own topic prefix).
- Database: a fresh PostgreSQL database per test when `PHOIHOP_TEST_DATABASE_URL` is set
  (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres), SQLite otherwise.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from phoihop_common.config import default_config_dir
from phoihop_common.kafka import KafkaSettings, ensure_topics
from phoihop_common.pii import PiiCipher
from phoihop_embedded.broker import EmbeddedBroker
from phoihop_embedded.stack import Stack, tail

KAFKA_ENV = "PHOIHOP_TEST_KAFKA_BOOTSTRAP"
DATABASE_ENV = "PHOIHOP_TEST_DATABASE_URL"
# A fixed reporter-identity key, for tests that build `received` events themselves.
TEST_PII_KEY = base64.b64encode(bytes(range(32))).decode()


def fixed_pii_cipher() -> PiiCipher:
    """The keyring of `TEST_PII_KEY` (give services `PHOIHOP_<SVC>_PII_KEY=TEST_PII_KEY`)."""
    return PiiCipher(current=base64.b64decode(TEST_PII_KEY))


@pytest.fixture
def kafka_bootstrap(tmp_path: Path) -> Iterator[str]:
    """Bootstrap of a broker with the bus's topics created."""
    external = os.environ.get(KAFKA_ENV)
    if external:
        asyncio.run(ensure_topics(KafkaSettings(kafka_bootstrap=external)))
        yield external
        return
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log").start()
    try:
        asyncio.run(ensure_topics(KafkaSettings(kafka_bootstrap=broker.bootstrap)))
        yield broker.bootstrap
    finally:
        broker.stop()


# The embedded broker (Tansu) answers a consumer's first JoinGroup only after half its
# session timeout: 5 s with the production default of 10 s, at every consumer start of every
# test. Tests run with 4 s sessions (2 s joins); a test or a user's environment may still set
# its own. Fault tests that time takeovers set theirs explicitly.
TEST_SESSION_ENV = {
    "PHOIHOP_INGEST_CONSUMER_SESSION_TIMEOUT_MS": "4000",
    "PHOIHOP_NOTIFY_CONSUMER_SESSION_TIMEOUT_MS": "4000",
    "PHOIHOP_AUDIT_CONSUMER_SESSION_TIMEOUT_MS": "4000",
    "PHOIHOP_ROUTING_BROKER_SESSION_TIMEOUT": "4",
}


def pytest_configure(config: pytest.Config) -> None:
    """Shorter consumer sessions for the whole run (see TEST_SESSION_ENV)."""
    for name, value in TEST_SESSION_ENV.items():
        os.environ.setdefault(name, value)


def _pg_admin_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database="postgres").render_as_string(hide_password=False)


# Every statement of the test database's set-up and teardown is bounded: a teardown that
# waits for a lock (a service still connected, a backend stuck behind a cut proxy) must
# fail and retry, never hang until the pytest timeout.
PG_ADMIN_ATTEMPTS = 4
PG_ADMIN_TIMEOUTS = ("SET lock_timeout = '5s'", "SET statement_timeout = '15s'")


def _pg_admin(base: str, statements: list[tuple[str, dict[str, Any]]]) -> None:
    """Run admin statements (autocommit, bounded waits), retrying a few times."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError

    engine = create_engine(
        _pg_admin_url(base), isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 10}
    )
    try:
        for attempt in range(1, PG_ADMIN_ATTEMPTS + 1):
            try:
                with engine.connect() as conn:
                    for setting in PG_ADMIN_TIMEOUTS:
                        conn.execute(text(setting))
                    for sql, params in statements:
                        conn.execute(text(sql), params)
                return
            except DBAPIError:
                if attempt == PG_ADMIN_ATTEMPTS:
                    raise
                time.sleep(attempt)
    finally:
        engine.dispose()


def _drop_pg_database(base: str, name: str) -> None:
    """Disconnect everyone from the test database, then drop it; warn rather than hang."""
    from sqlalchemy.exc import DBAPIError

    terminate = (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = :name AND pid <> pg_backend_pid()"
    )
    try:
        _pg_admin(
            base,
            [
                (f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false', {}),
                (terminate, {"name": name}),
                (f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', {}),
            ],
        )
    except DBAPIError as exc:
        warnings.warn(f"test database {name} left behind: {exc}", stacklevel=2)


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: PostgreSQL when configured, else a SQLite file."""
    base = os.environ.get(DATABASE_ENV)
    if not base:
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    from sqlalchemy.engine import make_url

    name = f"phoihop_test_{uuid.uuid4().hex[:12]}"
    _pg_admin(base, [(f'CREATE DATABASE "{name}"', {})])
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        _drop_pg_database(base, name)


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A private, editable copy of deploy/config."""
    target = tmp_path / "config"
    shutil.copytree(default_config_dir(), target)
    return target


@pytest.fixture
def stack_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Stack]]:
    """Start the whole bus as real processes; everything is stopped after the test."""
    stacks: list[Stack] = []
    # Requested now, not lazily in `start`: a fixture set up during the test is torn down
    # before this one, and the database must outlive the processes connected to it.
    shared_db = request.getfixturevalue("database_url") if os.environ.get(DATABASE_ENV) else None

    def start(**kwargs: Any) -> Stack:
        external = os.environ.get(KAFKA_ENV)
        db = kwargs.pop("database_url", None) or shared_db
        stack = Stack(
            data_dir=tmp_path / f"stack{len(stacks)}",
            kafka_bootstrap=external,
            topic_prefix=f"t{uuid.uuid4().hex[:8]}" if external else None,
            database_url=db,
            **kwargs,
        )
        stacks.append(stack)
        stack.start()
        return stack

    yield start
    failed = getattr(request.node, "rep_call", None)
    for stack in stacks:
        if failed is not None and failed.failed:
            for name, proc in stack.procs.items():
                print(f"----- {name} log -----\n{tail(proc.log_path, 60)}")
        stack.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep the call-phase report on the item so fixtures can print logs on failure."""
    rep = yield
    if rep.when == "call":
        item.rep_call = rep  # type: ignore[attr-defined]
    return rep
