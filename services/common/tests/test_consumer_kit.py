"""The consumer kit on the real broker: poison alone to the dead-letter topic, neighbours on."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from functools import cache

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import REGISTRY
from sqlalchemy.exc import OperationalError

from phoihop_common.consumer import ConsumerKit, ConsumerPolicy, Raw, Reject
from phoihop_common.db import DATABASE_TRANSIENT
from phoihop_common.kafka import KafkaSettings, producer_kwargs
from phoihop_common.metrics import ServiceMetrics
from phoihop_schemas.topics import DEAD_LETTER, INBOUND_SUBMISSIONS

pytestmark = pytest.mark.integration
TOPIC = INBOUND_SUBMISSIONS.name


@cache
def metrics() -> ServiceMetrics:
    """Registered once per process."""
    return ServiceMetrics.create("kittest")


class Recorder:
    """A handler whose behaviour per value is scripted by the test."""

    def __init__(self) -> None:
        self.applied: list[bytes] = []
        self.calls = 0
        self.transient_left = 0

    async def __call__(self, records: Sequence[Raw]) -> list[Reject]:
        self.calls += 1
        if self.transient_left > 0:
            self.transient_left -= 1
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("database down"))
        if any(r.value == b"poison" for r in records):
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        bad = [r for r in records if (r.value or b"").startswith(b"bad")]
        self.applied.extend(r.value or b"" for r in records if r not in bad)
        return [Reject(r, "bad_value", "scripted reject") for r in bad]


async def _produce(bootstrap: str, values: Sequence[bytes]) -> None:
    settings = KafkaSettings(kafka_bootstrap=bootstrap)
    producer = AIOKafkaProducer(**producer_kwargs(settings), max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(TOPIC, value=value, key=b"k", partition=0)
    finally:
        await producer.stop()


async def _dead_letters(bootstrap: str, *, expect: int, within: float = 30.0) -> list[Raw]:
    consumer = AIOKafkaConsumer(
        DEAD_LETTER.name, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[Raw] = []
    try:
        deadline = asyncio.get_running_loop().time() + within
        while len(found) < expect and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for part in batch.values():
                found.extend(part)
        # anything more within a short while would be a duplicate dead letter
        batch = await consumer.getmany(timeout_ms=1500)
        for part in batch.values():
            found.extend(part)
    finally:
        await consumer.stop()
    return found


@contextlib.asynccontextmanager
async def running(
    bootstrap: str, handler: Recorder, group_id: str | None = None, **policy: float
) -> AsyncIterator[ConsumerKit]:
    settings = KafkaSettings(kafka_bootstrap=bootstrap)
    producer = AIOKafkaProducer(**producer_kwargs(settings))
    await producer.start()
    kit = ConsumerKit(
        name=f"kit-{uuid.uuid4().hex[:6]}",
        topics=[TOPIC],
        group_id=group_id or f"kit-{uuid.uuid4().hex[:8]}",
        settings=settings,
        policy=ConsumerPolicy(
            consumer_retry_backoff_s=0.05,
            consumer_stuck_after_s=policy.get("stuck_after", 30.0),
            consumer_max_records=50,
            consumer_linger_ms=int(policy.get("linger_ms", 0)),
            consumer_linger_records=int(policy.get("linger_records", 200)),
        ),
        handler=handler,
        producer=lambda: producer,
        metrics=metrics(),
        transient=DATABASE_TRANSIENT,
    )
    task = asyncio.create_task(kit.run())
    try:
        yield kit
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await kit.stop()
        await producer.stop()


async def _until(condition: object, within: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_poison_record_is_dead_lettered_alone_and_neighbours_commit(
    kafka_bootstrap: str,
) -> None:
    values = [b"a", b"b", b"poison", b"bad", b"c", b"x" * (600 * 1024)]
    await _produce(kafka_bootstrap, values)
    handler = Recorder()
    async with running(kafka_bootstrap, handler) as kit:
        await _until(lambda: b"c" in handler.applied and len(handler.applied) >= 4)
        await _until(lambda: kit.health.busy_since is None)
        assert kit.problem() is None
    assert sorted(set(handler.applied)) == sorted({b"a", b"b", b"c", b"x" * (600 * 1024)})
    letters = await _dead_letters(kafka_bootstrap, expect=2)
    reasons = sorted(dict(r.headers)["dlq_reason"].decode() for r in letters)
    assert reasons == ["bad_value", "processing_failed"], reasons
    poison = next(r for r in letters if dict(r.headers)["dlq_reason"] == b"processing_failed")
    assert poison.value == b"poison"
    assert b"UnicodeEncodeError" in dict(poison.headers)["dlq_detail"]
    assert dict(poison.headers)["dlq_offset"] == b"2"

    # committed: a new member of the same group, once it owns the partitions, gets nothing
    again = Recorder()
    async with running(kafka_bootstrap, again, group_id=kit.group_id) as second:
        await _until(lambda: second.consumer is not None and second.consumer.assignment(), 60)
        await asyncio.sleep(1.0)
    assert again.applied == []


async def test_linger_gathers_what_arrives_into_one_batch(kafka_bootstrap: str) -> None:
    handler = Recorder()
    values = [f"linger-{i}".encode() for i in range(5)]
    async with running(kafka_bootstrap, handler, linger_ms=5000, linger_records=5) as kit:
        await _until(lambda: kit.consumer is not None and kit.consumer.assignment())
        await _produce(kafka_bootstrap, values[:1])
        await asyncio.sleep(0.3)  # the first record is in hand, the kit is lingering
        await _produce(kafka_bootstrap, values[1:])
        await _until(lambda: len(handler.applied) == 5)
    # one handler call, one transaction, one commit for the five
    assert handler.calls == 1
    assert handler.applied == values


async def test_oversized_reject_is_summarised(kafka_bootstrap: str) -> None:
    big = b"bad" + b"y" * (2 * 1024 * 1024)
    await _produce(kafka_bootstrap, [big, b"after"])
    handler = Recorder()
    async with running(kafka_bootstrap, handler):
        await _until(lambda: handler.applied == [b"after"])
        letters = await _dead_letters(kafka_bootstrap, expect=1)
    assert len(letters) == 1, [r.headers for r in letters]
    headers = dict(letters[0].headers)
    assert headers["dlq_value_truncated"] == b"1"
    summary = json.loads(letters[0].value or b"")
    assert summary["size"] == len(big)
    assert summary["sha256"] == hashlib.sha256(big).hexdigest()
    assert base64.b64decode(summary["head_base64"]) == big[:1024]


async def test_transient_failure_retries_without_dead_letters_and_reports_stuck(
    kafka_bootstrap: str,
) -> None:
    await _produce(kafka_bootstrap, [b"a", b"b"])
    handler = Recorder()
    handler.transient_left = 10**6
    async with running(kafka_bootstrap, handler, stuck_after=0.5) as kit:
        await _until(lambda: kit.problem() is not None)
        problem = kit.problem() or ""
        assert "retrying the same records" in problem
        assert "OperationalError" in problem
        stuck = REGISTRY.get_sample_value("phoihop_kittest_consumer_stuck", {"consumer": kit.name})
        assert stuck == 1.0
        handler.transient_left = 0  # the database is back
        await _until(lambda: handler.applied == [b"a", b"b"])
        await _until(lambda: kit.problem() is None)
    assert await _dead_letters(kafka_bootstrap, expect=0, within=1.0) == []
