"""pytest fixtures shared by every test suite: broker, database, config, whole stack.

- Broker: an embedded Tansu per test (it starts in milliseconds), or a real Kafka when
  `PHOIHOP_TEST_KAFKA_BOOTSTRAP` is set (then each stack gets its own topic prefix).
- Database: a fresh PostgreSQL database per test when `PHOIHOP_TEST_DATABASE_URL` is set
  (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres), SQLite otherwise.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from phoihop_common.broker import EmbeddedBroker
from phoihop_common.config import default_config_dir
from phoihop_common.kafka import KafkaSettings, ensure_topics
from phoihop_common.stack import Stack, tail

KAFKA_ENV = "PHOIHOP_TEST_KAFKA_BOOTSTRAP"
DATABASE_ENV = "PHOIHOP_TEST_DATABASE_URL"


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


def _pg_admin_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database="postgres").render_as_string(hide_password=False)


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: PostgreSQL when configured, else a SQLite file."""
    base = os.environ.get(DATABASE_ENV)
    if not base:
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"phoihop_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_pg_admin_url(base), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


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

    def start(**kwargs: Any) -> Stack:
        external = os.environ.get(KAFKA_ENV)
        db = kwargs.pop("database_url", None)
        if db is None and os.environ.get(DATABASE_ENV):
            db = request.getfixturevalue("database_url")
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
